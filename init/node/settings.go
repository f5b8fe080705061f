package node

import (
	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/join"
)

// agentTokenSetting is kubernetes.agent-token as the cluster record's
// must-match settings hold it, in clear: never the token, but the name of
// the agents' bootstrap token Secret every server derives from it
// (bootstrap-token-<id>, a name the datastore holds in clear anyway); ""
// when the config gives none (agents join with the server token). A
// rotation of the agent token changes it: whatever rotates the token
// updates the record's setting with it.
func agentTokenSetting(k *config.Kubernetes) string {
	t, ok, err := givenAgentToken(k)
	switch {
	case err != nil:
		// The server refused to start on this before it got here; say
		// it rather than record "none".
		return "unreadable"
	case !ok:
		return ""
	}
	id, _ := join.AgentBootstrapToken(t.Secret)
	return bootstrapPrefix + id
}
