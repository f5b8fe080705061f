package config

import (
	"fmt"
	"time"
)

// The VIP election's timings when the config sets none: a hard power-off
// of the holder moves the VIP in about two seconds, and the holder drops
// it half a second before the others may take it.
const (
	DefaultVIPLeaseDuration = 2 * time.Second
	DefaultVIPRenewDeadline = 1500 * time.Millisecond
	DefaultVIPRetryPeriod   = 500 * time.Millisecond
)

// Bounds of the timings: a retry period under minVIPRetryPeriod would load
// the apiservers for nothing; a lease over maxVIPLeaseDuration is not the
// fast failover the VIP is for (and a holder's claim longer than it is
// read as whole seconds, see init/node/vip).
const (
	minVIPRetryPeriod   = 100 * time.Millisecond
	maxVIPLeaseDuration = 5 * time.Minute
	// minVIPMargin is the least time between the holder's renew deadline
	// and the lease's end: the holder must have dropped the address
	// before another server may take it, on a machine busy enough to be
	// late by a few hundred milliseconds.
	minVIPMargin = 200 * time.Millisecond
)

// VIPTimings are the election's durations.
type VIPTimings struct {
	// LeaseDuration: the others take the lease after seeing no renewal
	// for this long. RenewDeadline: the holder drops the VIP when it has
	// not renewed for this long. RetryPeriod: how often the holder renews
	// and the others look.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// VIPTimings are the configured timings with defaults filled in. The
// config must have been validated (an unparsable value is an error here).
func (k *Kubernetes) VIPTimings() (VIPTimings, error) {
	t := VIPTimings{DefaultVIPLeaseDuration, DefaultVIPRenewDeadline, DefaultVIPRetryPeriod}
	for _, f := range []struct {
		key, val string
		to       *time.Duration
	}{
		{"vip-lease-duration", k.VIPLeaseDuration, &t.LeaseDuration},
		{"vip-renew-deadline", k.VIPRenewDeadline, &t.RenewDeadline},
		{"vip-retry-period", k.VIPRetryPeriod, &t.RetryPeriod},
	} {
		if f.val == "" {
			continue
		}
		d, err := time.ParseDuration(f.val)
		if err != nil {
			return t, fmt.Errorf("kubernetes.%s %q is not a duration; write it with a unit, like 2s or 500ms", f.key, f.val)
		}
		*f.to = d
	}
	return t, nil
}

// vipTimings checks the election's timings.
func (ck *checker) vipTimings() {
	k := &ck.c.Kubernetes
	const kp = "kubernetes."
	keys := []string{"vip-lease-duration", "vip-renew-deadline", "vip-retry-period"}
	var given []string
	for _, key := range keys {
		if ck.set(kp + key) {
			given = append(given, key)
		}
	}
	if len(given) == 0 {
		return
	}
	switch {
	case k.Role == "agent":
		for _, key := range given {
			ck.warnf(kp+key, "kubernetes.%s is a server setting (servers elect the VIP's holder); agents ignore it", key)
		}
		return
	case k.VIP == "":
		for _, key := range given {
			ck.warnf(kp+key, "kubernetes.%s is set but vip is not; it is ignored", key)
		}
		return
	case k.Distribution == "k3s":
		for _, key := range given {
			ck.warnf(kp+key, "kubernetes.%s is cairn's own VIP election, which does not run with distribution: k3s; it is ignored", key)
		}
		return
	}
	vals := map[string]string{keys[0]: k.VIPLeaseDuration, keys[1]: k.VIPRenewDeadline, keys[2]: k.VIPRetryPeriod}
	bad := false
	for _, key := range given {
		if d, err := time.ParseDuration(vals[key]); err != nil || d <= 0 {
			ck.errorf(kp+key, "kubernetes.%s %q is not a positive duration; write it with a unit, like 2s or 500ms", key, vals[key])
			bad = true
		}
	}
	if bad {
		return
	}
	t, _ := k.VIPTimings()
	// A message about two keys points at the first the user set.
	at := func(a, b string) string {
		if ck.set(kp + a) {
			return kp + a
		}
		return kp + b
	}
	switch {
	case t.LeaseDuration > maxVIPLeaseDuration:
		ck.errorf(kp+keys[0], "kubernetes.vip-lease-duration %s is longer than %s; the VIP is for failover in seconds", t.LeaseDuration, maxVIPLeaseDuration)
	case t.RetryPeriod < minVIPRetryPeriod:
		ck.errorf(kp+keys[2], "kubernetes.vip-retry-period %s is shorter than %s; every server asks its apiserver this often", t.RetryPeriod, minVIPRetryPeriod)
	case t.RenewDeadline > t.LeaseDuration-minVIPMargin:
		ck.errorf(at(keys[1], keys[0]), "kubernetes.vip-renew-deadline %s must be at least %s shorter than kubernetes.vip-lease-duration %s: the holder drops the VIP at its renew deadline, and must have done so before another server may take it at the lease's end", t.RenewDeadline, minVIPMargin, t.LeaseDuration)
	case t.RetryPeriod >= t.RenewDeadline:
		ck.errorf(at(keys[2], keys[1]), "kubernetes.vip-retry-period %s must be shorter than kubernetes.vip-renew-deadline %s: the holder renews every retry period and drops the VIP at the deadline", t.RetryPeriod, t.RenewDeadline)
	}
}
