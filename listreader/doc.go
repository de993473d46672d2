// Package listreader reads the lists capcheck checks: a CSV file with a
// header (any of , ; tab | as delimiter) or plain text with one number per
// line, gzip-compressed or not. It finds the phone column (given by name or
// index, or found by its header) and streams the data records, each with its
// row number and the raw text of its phone field, marking those it already
// knows to reject (missing, malformed, a field too long to be a number). It
// is forgiving of broken CSV and never lets one bad record swallow others;
// see Reader.
//
//	rd, err := listreader.New(f, listreader.Config{Column: "phone"})
//	for {
//		rec, err := rd.Next() // io.EOF after the last record
//		...
//	}
package listreader
