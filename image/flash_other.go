//go:build !linux

package image

import (
	"errors"
	"os"
)

var errFlashLinux = errors.New("cairn flash runs on Linux")

func blockNames(os.FileInfo) (map[string]bool, error) { return nil, errFlashLinux }

func usedBy(string, map[string]bool) string { return "" }
