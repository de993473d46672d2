package main

import "testing"

func TestSettingsHint(t *testing.T) {
	t.Parallel()
	for reason, want := range map[string]string{
		"the API refused the key (401 RBC401 Unauthorized): check the API key":             " (check --api-key-file or --api-key)",
		"the API answered 404 for the capability-check URL: check the API URL and the SID": " (check --api-url and --sid)",
		"the API cannot be reached (dial tcp: refused): check the API URL":                 " (check --api-url)",
		"stopped by hand": "",
	} {
		if got := settingsHint(reason); got != want {
			t.Errorf("settingsHint(%q) = %q; want %q", reason, got, want)
		}
	}
}
