//go:build !linux

package vip

import (
	"errors"
	"net/netip"
)

// NewAddress is Linux's: elsewhere every Add fails.
func NewAddress(vip netip.Addr, want LinkMatch) Address { return otherAddress{} }

type otherAddress struct{}

func (otherAddress) Add() (string, error)      { return "", errors.New("holding a VIP needs Linux") }
func (otherAddress) Announce()                 {}
func (otherAddress) Remove() ([]string, error) { return nil, nil }
