package config

// This file is the contract other packages code against. Its signatures stay
// stable; the implementation lives in the rest of the package.

// Severity is how serious a Diagnostic is.
type Severity int

const (
	// Warning: the document is usable, something in it is ignored.
	Warning Severity = iota
	// Error: the document must not be applied.
	Error
)

// Diagnostic is one problem found in a document, located at the YAML node
// that caused it.
type Diagnostic struct {
	File     string
	Line     int
	Column   int
	Severity Severity
	// Path is the config path of the offending key, like "kubernetes.vip".
	Path    string
	Message string
}

// Diagnostics is every problem found, in document order.
type Diagnostics []Diagnostic

// Source is one config document and where it came from. Name appears in
// diagnostics ("user-data", "/etc/cairn/config.yaml", "http://10.0.2.2/c").
type Source struct {
	Name string
	Data []byte
	// Kind says what the document is; the zero value is a cloud-config.
	Kind SourceKind
}

// SourceKind is what a Source's document holds.
type SourceKind int

const (
	// CloudConfig is user-data: a #cloud-config document (or plain YAML).
	CloudConfig SourceKind = iota
	// NetworkConfig is a NoCloud network-config file: network config
	// version 2 at its top level or under "network:". It sets the network
	// key and nothing else, and its diagnostics point into the file as is.
	NetworkConfig
)

// The functions below are the package's entry points (implemented elsewhere
// in this package):
//
//	// Parse reads one document (cloud-config or plain YAML) strictly. It
//	// reports every problem at once; cfg is nil when there is an error.
//	func Parse(src Source) (cfg *Config, diags Diagnostics)
//
//	// Load parses every source, merges them in order (later sources win per
//	// key, keys keep the location of the source that set them), fills defaults
//	// and validates the result. Nothing may be applied when diags.HasErrors().
//	func Load(srcs ...Source) (cfg *Config, diags Diagnostics)
//
//	func (d Diagnostic) String() string   // "FILE:LINE:COL: error: message"
//	func (ds Diagnostics) HasErrors() bool
//	func (ds Diagnostics) Err() error      // nil unless HasErrors; lists every error
//
//	// Redacted returns a copy with the token, datastore password, registry
//	// credentials and key material replaced by "<redacted>"; Marshal
//	// renders it as #cloud-config.
//	func (c *Config) Redacted() *Config
//	func (c *Config) Marshal() ([]byte, error)
