package join

import (
	"math"
	"regexp"
	"unicode"
)

// MinStrength is the least estimated strength, in bits, of a token's
// secret that cairn accepts: `cairn token generate` makes 192.
const MinStrength = 128

// bootstrapFormat is a Kubernetes bootstrap token, which k3s takes as a
// token too: its id is public, only its 16 characters of [a-z0-9] are secret.
var bootstrapFormat = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)

// Strength estimates how many bits of guessing the secret of a token
// (what ParseToken calls Token.Secret) is worth. It is an upper bound made
// from the length and the kinds of characters: a secret of hex digits
// counts 4 bits a character, one mixing lower and upper case letters,
// digits and symbols counts log2 of the size of the alphabets it draws
// from; a character that continues a run of three or more equal or
// consecutive ones ("aaa", "123", "cba") counts nothing. It cannot tell
// dictionary words from random letters: a long sentence scores high.
func Strength(secret string) float64 {
	if bootstrapFormat.MatchString(secret) {
		return 16 * math.Log2(36)
	}
	var lower, upper, digit, other, wide bool
	hex := true
	for _, r := range secret {
		switch {
		case r >= 'a' && r <= 'z':
			lower = true
			hex = hex && r <= 'f'
		case r >= 'A' && r <= 'Z':
			upper = true
			hex = hex && r <= 'F'
		case r >= '0' && r <= '9':
			digit = true
		case r < 0x80 && unicode.IsPrint(r):
			other, hex = true, false
		default:
			wide, hex = true, false
		}
	}
	pool := 0
	switch {
	case hex && !(lower && upper):
		pool = 16
	default:
		for _, c := range []struct {
			has  bool
			size int
		}{{lower, 26}, {upper, 26}, {digit, 10}, {other, 33}, {wide, 100}} {
			if c.has {
				pool += c.size
			}
		}
	}
	if pool == 0 {
		return 0
	}
	counted := 0
	rs := []rune(secret)
	for i := range rs {
		if i >= 2 {
			d1, d2 := rs[i]-rs[i-1], rs[i-1]-rs[i-2]
			if d1 == d2 && (d1 == 0 || d1 == 1 || d1 == -1) {
				continue // a run: "aaa", "abc", "321"
			}
		}
		counted++
	}
	return float64(counted) * math.Log2(float64(pool))
}
