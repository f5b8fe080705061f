package config

// validate checks the merged config; see checks below.
func (c *Config) validate() Diagnostics {
	return nil
}
