// Package config is cairn's cloud-config contract: strict parsing with
// file:line:column diagnostics, validation, defaults, merging of config sources,
// redaction of secrets, and rendering to the flags of each node component.
//
// The init, the image builder and `cairn validate` all go through this package,
// so a document accepted here is one every part of cairn understands.
package config
