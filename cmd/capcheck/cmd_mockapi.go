package main

import (
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/configs"
	"github.com/capcheck/capcheck/mockapi"
)

func mockAPICommand() *cli.Command {
	return &cli.Command{
		Name:  "mock-api",
		Usage: "run a local simulator of the capability-check API",
		Description: "Serves POST /v1/{sid}/messages/soip/capability-check like the provider: it checks\n" +
			"the api-key header, the SID, the body and every number, answers 202, 400, 401, 429\n" +
			"or 503, adds latency and drops connections as configured; a request counts (--rate,\n" +
			"/stats) when the kernel received it, not when it is handled (Linux). GET /stats shows\n" +
			"what it saw. With --callback-url it calls back like the provider: one callback per accepted\n" +
			"number, {\"number\":..., \"status\":\"capable\"|\"not_capable\"} with --callback-token in\n" +
			"--callback-header, after --callback-delay plus jitter, retried until answered 2xx;\n" +
			"a number is capable when the SplitMix64 hash of its digits over 2^64 is below\n" +
			"--capable-fraction (mockapi.Capable), the other way round for the --flip-fraction\n" +
			"of numbers mockapi.Flipped picks. It runs until SIGINT or SIGTERM, then shuts down gracefully.\n\n" +
			"Its options have variables CAPCHECK_MOCK_API_* and keys under mock_api: in the\n" +
			"config file; --rate here is the simulator's own limit, not the client's rate.",
		Flags: slices.Concat(configs.CommonFlags(), configs.CredentialFlags(), configs.MockAPIFlags(),
			configs.CallbackAuthFlags()),
		Action: mockAPI,
	}
}

func mockAPI(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg, err := loadConfig(c, configs.Needs{Credentials: true})
	if err != nil {
		return err
	}
	mc := cfg.MockAPI.Config
	mc.SID, mc.APIKey = cfg.API.SID, cfg.API.Key.Reveal()
	mc.CallbackToken = cfg.Callback.Token.Reveal() // sent, never logged
	mc.CallbackHeader = cfg.Callback.Header
	mc.Logger = newLogger(cfg, c.App.ErrWriter)
	srv, err := mockapi.New(mc)
	if err != nil {
		// configs.Validate checks what mockapi checks; this is a backstop.
		return usageErrorf("%v", err)
	}
	ln, err := srv.Listen(cfg.MockAPI.Listen)
	if err != nil {
		return err // e.g. the address is in use: a runtime error
	}
	return srv.Serve(c.Context, ln)
}
