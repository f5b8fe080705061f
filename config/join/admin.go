package join

import (
	"context"
	"encoding/base64"
	"fmt"

	"github.com/cairn-os/cairn/config/kube"
)

// ReadToken reads the cluster's full token from the cluster with admin
// credentials.
func ReadToken(ctx context.Context, api *kube.Client) (string, error) {
	var sec struct {
		Data map[string]string `json:"data"`
	}
	if err := api.Get(ctx, "/api/v1/namespaces/kube-system/secrets/"+TokenSecret, &sec); err != nil {
		return "", err
	}
	tok, err := base64.StdEncoding.DecodeString(sec.Data[TokenKey])
	if err != nil || len(tok) == 0 {
		return "", fmt.Errorf("the cluster's %s holds no token", TokenSecret)
	}
	return string(tok), nil
}
