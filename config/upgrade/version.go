package upgrade

import "fmt"

// CheckVersion says what is wrong with a cairn version as a build writes
// it (the init's, the loader entry's title, os-release and update.json):
// the same rule as a bundle's version.
func CheckVersion(v string) error {
	if !safeWord.MatchString(v) {
		return fmt.Errorf("version %q is empty, longer than 128 characters or has characters other than letters, digits and ._+-", v)
	}
	return nil
}
