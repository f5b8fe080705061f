package kube

import (
	"context"
	"time"
)

// Condition is one of a Node's status conditions.
type Condition struct {
	Type, Status, Reason, Message string
	LastHeartbeatTime             time.Time `json:"lastHeartbeatTime"`
}

// NodeReady reads the Ready condition of the Node called name; nil when
// the Node has none yet.
func (c *Client) NodeReady(ctx context.Context, name string) (*Condition, error) {
	var n struct {
		Status struct {
			Conditions []Condition `json:"conditions"`
		} `json:"status"`
	}
	if err := c.Get(ctx, "/api/v1/nodes/"+name, &n); err != nil {
		return nil, err
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == "Ready" {
			return &cond, nil
		}
	}
	return nil, nil
}
