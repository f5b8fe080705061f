package config

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
)

// Encodings write_files accepts, as cloud-init spells them.
var encodings = map[string]struct{ b64, gz bool }{
	"":            {},
	"text":        {},
	"b64":         {b64: true},
	"base64":      {b64: true},
	"gzip":        {gz: true},
	"gz":          {gz: true},
	"gz+b64":      {b64: true, gz: true},
	"gzip+base64": {b64: true, gz: true},
	"gz+base64":   {b64: true, gz: true},
	"gzip+b64":    {b64: true, gz: true},
}

// maxFileSize bounds what one write_files entry may decode to.
const maxFileSize = 64 << 20

// Decode returns the file's bytes, undoing its encoding.
func (w WriteFile) Decode() ([]byte, error) {
	enc, ok := encodings[strings.ToLower(w.Encoding)]
	if !ok {
		return nil, fmt.Errorf("encoding %q is not one of text, b64, base64, gzip, gz, gz+b64, gzip+base64, gz+base64", w.Encoding)
	}
	data := []byte(w.Content)
	if enc.b64 {
		clean := strings.Map(func(r rune) rune {
			if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, w.Content)
		b, err := base64.StdEncoding.DecodeString(clean)
		if err != nil {
			if b2, err2 := base64.RawStdEncoding.DecodeString(strings.TrimRight(clean, "=")); err2 == nil {
				b, err = b2, nil
			}
		}
		if err != nil {
			return nil, fmt.Errorf("content is not valid base64: %w", err)
		}
		data = b
	}
	if enc.gz {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("content is not gzip data: %w", err)
		}
		b, err := io.ReadAll(io.LimitReader(zr, maxFileSize+1))
		if err != nil {
			return nil, fmt.Errorf("content does not decompress: %w", err)
		}
		if len(b) > maxFileSize {
			return nil, fmt.Errorf("content decompresses to more than %d bytes", maxFileSize)
		}
		data = b
	}
	return data, nil
}

// Mode returns the file's permissions ("0600", "600" and "0o600" are all
// octal; empty is 0644).
func (w WriteFile) Mode() (fs.FileMode, error) {
	p := strings.TrimSpace(w.Permissions)
	if p == "" {
		return 0o644, nil
	}
	p = strings.TrimPrefix(strings.TrimPrefix(p, "0o"), "0O")
	n, err := strconv.ParseUint(p, 8, 32)
	if err != nil || n > 0o7777 {
		return 0, fmt.Errorf("permissions %q is not an octal mode like \"0644\"", w.Permissions)
	}
	m := fs.FileMode(n & 0o777)
	if n&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if n&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if n&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m, nil
}
