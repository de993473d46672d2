package callbacks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// field is one callback's number and status as found in the request.
type field struct {
	number, status string
}

// badRequest is a problem with a request, answered 400 with its text.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error { return &badRequest{msg: fmt.Sprintf(format, args...)} }

// extract reads the callbacks of a request: the body as JSON (object or
// array of objects) or as a form, else the query string.
func (r *Receiver) extract(req *http.Request, body []byte) ([]field, error) {
	mt := mediaType(req.Header.Get("Content-Type"))
	t := bytes.TrimSpace(body)
	switch {
	case len(t) == 0:
		query := req.URL.Query()
		if len(query) == 0 {
			return nil, badf("no callback: the body and the query string are empty")
		}
		return r.fromValues(query, "query string")
	case mt == "application/x-www-form-urlencoded" || mt == "" && t[0] != '{' && t[0] != '[':
		vals, err := url.ParseQuery(string(t))
		if err != nil {
			return nil, badf("form body does not parse: %v", err)
		}
		return r.fromValues(vals, "form body")
	case strings.HasSuffix(mt, "json") || t[0] == '{' || t[0] == '[':
		return r.fromJSON(t)
	}
	return nil, badf("content type %q is not read: send JSON, a form or a query string", mt)
}

// mediaType is the content type without parameters, lower case; "" when
// it does not parse.
func mediaType(ct string) string {
	if ct == "application/json" || ct == "" { // what nearly every callback sends
		return ct
	}
	mt, _, _ := mime.ParseMediaType(ct)
	return mt
}

func (r *Receiver) fromValues(v url.Values, where string) ([]field, error) {
	f := field{number: strings.TrimSpace(v.Get(r.cfg.NumberField)), status: strings.TrimSpace(v.Get(r.cfg.StatusField))}
	if f.number == "" {
		return nil, badf("%s has no number field %q", where, r.cfg.NumberField)
	}
	if !v.Has(r.cfg.StatusField) {
		return nil, badf("%s has no status field %q", where, r.cfg.StatusField)
	}
	return []field{f}, nil
}

func (r *Receiver) fromJSON(body []byte) ([]field, error) {
	if fs, ok := scanJSON(body, r.numberPath, r.statusPath); ok {
		return fs, nil
	}
	return r.decodeJSON(body)
}

// decodeJSON decodes the whole body and follows the paths: the reading
// of any JSON body, and the one that names what is wrong.
func (r *Receiver) decodeJSON(body []byte) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, badf("body is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, badf("body holds more than one JSON value")
	}
	var objs []any
	switch x := v.(type) {
	case map[string]any:
		objs = []any{x}
	case []any:
		if len(x) == 0 {
			return nil, badf("body is an empty JSON array")
		}
		objs = x
	default:
		return nil, badf("body must be a JSON object or an array of objects")
	}
	out := make([]field, 0, len(objs))
	var errs []error
	for i, o := range objs {
		f, err := r.fromObject(o)
		if err != nil {
			if len(objs) > 1 {
				err = badf("element %d: %v", i, err)
			}
			errs = append(errs, err)
			continue
		}
		out = append(out, f)
	}
	if len(errs) > 0 {
		return out, badf("%s", errors.Join(errs...).Error())
	}
	return out, nil
}

func (r *Receiver) fromObject(o any) (field, error) {
	if _, ok := o.(map[string]any); !ok {
		return field{}, badf("not a JSON object")
	}
	num, ok := lookup(o, r.cfg.NumberField)
	if !ok {
		return field{}, badf("no number field %q", r.cfg.NumberField)
	}
	n := scalar(num)
	if n == "" {
		return field{}, badf("number field %q is empty or not a string or number", r.cfg.NumberField)
	}
	st, ok := lookup(o, r.cfg.StatusField)
	if !ok {
		return field{}, badf("no status field %q", r.cfg.StatusField)
	}
	return field{number: n, status: scalar(st)}, nil
}

// lookup follows a dot path through objects (and arrays, by index).
func lookup(v any, path string) (any, bool) {
	for seg := range strings.SplitSeq(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[seg]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, v != nil
}

// scalar is a JSON string, number or boolean as text; "" for others.
func scalar(v any) string {
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x)
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}
