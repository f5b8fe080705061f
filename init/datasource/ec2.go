package datasource

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

const imdsDefault = "http://169.254.169.254"

// gatherEC2 reads user-data and the hostname from an EC2-style instance
// metadata service with IMDSv2: a session token from a PUT, then GETs
// carrying it. The token never leaves this function.
func gatherEC2(ctx context.Context, e *env, f *found) error {
	if !e.cmd.ec2 {
		return nil
	}
	base := strings.TrimSuffix(e.opts.IMDS, "/")
	if base == "" {
		base = imdsDefault
	}
	e.log.Info("config: asking the EC2 metadata service at " + base)
	tok, err := e.fetch.get(ctx, http.MethodPut, base+"/latest/api/token", true, func(r *http.Request) {
		r.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "300")
	})
	if err != nil {
		return err
	}
	token := strings.TrimSpace(string(tok))
	withToken := func(r *http.Request) { r.Header.Set("X-aws-ec2-metadata-token", token) }
	h, err := e.fetch.get(ctx, http.MethodGet, base+"/latest/meta-data/local-hostname", false, withToken)
	switch {
	case err == nil:
		f.addHostname(hostnameSource(base+"/latest/meta-data/local-hostname", string(h)))
	case !errors.Is(err, errNotFound):
		return err
	}
	ud, err := e.fetch.get(ctx, http.MethodGet, base+"/latest/user-data", false, withToken)
	switch {
	case err == nil:
		f.addUserData(base+"/latest/user-data", ud)
	case errors.Is(err, errNotFound):
		e.log.Info("config: the EC2 metadata service has no user-data")
	default:
		return err
	}
	return nil
}
