package e2e_test

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/capcheck/capcheck/jobstore"
)

// chromium returns the headless browser's path: a failure under CI=true
// when there is none (.ci/run installs Debian's chromium), a skip elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: .ci/run installs it (apt-get install chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium): the report's browser test is skipped")
	return ""
}

// browse runs headless Chromium on page with args (--screenshot=FILE or
// --dump-dom) and returns its standard output.
func browse(t *testing.T, bin, page string, args ...string) string {
	t.Helper()
	profile := t.TempDir()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + profile, "--window-size=1100,2200"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(all, "file://"+page)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, tail(errb.String(), 20))
	}
	return out.String()
}

// artifacts is where the test keeps its screenshot: $CAPCHECK_ARTIFACTS
// when set (make report-screenshot), else the test's temp dir.
func artifacts(t *testing.T) string {
	if d := os.Getenv("CAPCHECK_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// notBlank fails unless the PNG at path has many distinct colours.
func notBlank(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	colours := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}] = true
		}
	}
	if len(colours) < 8 {
		t.Fatalf("%s has %d colours: blank", path, len(colours))
	}
	return img
}

// TestReportInBrowser runs a job with 429s, transient faults and
// callbacks, then opens its report.html in headless Chromium: the page
// shows the job's figures as text and its plots as non-empty images.
func TestReportInBrowser(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	e := newEnv(t, true)
	cbAddr := freeAddr(t)
	e.start("callbacks", nil, append([]string{"callbacks", "--callback-listen", cbAddr}, e.redisArgs()...)...)
	m := e.startMock("mock-api", "--reject-suffix", rejectSuffix, "--fail-rate", "0.05", "--seed", "7",
		"--rate", "25", "--callback-url", "http://"+cbAddr+"/callback", "--callback-delay", "300ms",
		"--callback-jitter", "1s", "--callback-duplicate-rate", "0.05")
	e.startWorker("worker-1", m, apiKey)
	e.startWorker("worker-2", m, apiKey)
	l := e.genList("input.csv", 2000, 3, rejectSuffix, 1)
	const id = "e2e-report"
	args := append([]string{"enqueue", "--out", e.out, "--input", l.path, "--column", "phone",
		"--job", id, "--chunk-size", "100", "--callback-wait", "30s"}, e.redisArgs()...)
	e.exec("enqueue", 60*time.Second, args...).wantExit(t, 0, 0)
	j := e.waitJob(id, 120*time.Second)
	if j.State != jobstore.Done {
		t.Fatalf("job ended %s (%s)", j.State, j.Abort)
	}
	if j.RateLimited == 0 || j.Retries == 0 {
		t.Fatalf("the job had %d 429s and %d retries: the test needs both", j.RateLimited, j.Retries)
	}
	page := filepath.Join(e.out, id, "report.html")
	html, err := os.ReadFile(page)
	if err != nil {
		t.Fatalf("finalize wrote no report: %v", err)
	}
	for _, host := range []string{"http://", "https://", "<script"} {
		if bytes.Contains(bytes.ReplaceAll(html, []byte(`xmlns="http://www.w3.org/2000/svg"`), nil), []byte(host)) &&
			!bytes.Contains(html, []byte("xmlns:xlink=")) {
			t.Errorf("report.html contains %q: it must open without network or JavaScript", host)
		}
	}

	dom := browse(t, browser, page, "--dump-dom")
	want := []string{id, thousands(j.Accepted), "Exit code", "API requests per second",
		"429s", thousands(j.RateLimited), "capable", "+91", "Where the time went", "awaiting callbacks"}
	for _, w := range want {
		if !strings.Contains(dom, w) {
			t.Errorf("the page does not show %q", w)
		}
	}
	for _, plot := range []string{"plot-rate", "plot-callbacks", "plot-country"} {
		re := regexp.MustCompile(`(?s)id="` + plot + `"[^>]*>\s*<svg.*?</svg>`)
		svg := re.FindString(dom)
		if svg == "" || strings.Count(svg, "<path") < 5 {
			t.Errorf("plot %s is missing or empty in the page (%d bytes)", plot, len(svg))
		}
	}

	dir := artifacts(t)
	shot := filepath.Join(dir, "report.png")
	browse(t, browser, page, "--screenshot="+shot)
	notBlank(t, shot)
	t.Logf("screenshot of the report: %s", shot)

	p := e.exec("report-png", 60*time.Second, append([]string{"report", id, "--out", e.out, "--format", "png"}, e.redisArgs()...)...)
	p.wantExit(t, 0, 0)
	notBlank(t, filepath.Join(e.out, id, "report.png"))
	// The job list names the report.
	p = e.exec("status", 30*time.Second, append([]string{"status", "--out", e.out}, e.redisArgs()...)...)
	p.wantExit(t, 0, 0)
	if !strings.Contains(p.out.String(), page) {
		t.Errorf("status lists no report:\n%s", p.out.String())
	}
}

// thousands formats n as the report does: 1,835.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
