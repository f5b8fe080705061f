package config

// EncryptSecrets says whether a server writes Secrets to the datastore
// encrypted: secrets-encryption, true unless the config sets it false
// (k3s leaves it off; cairn, like Talos, turns it on by default).
func (k *Kubernetes) EncryptSecrets() bool {
	return k.SecretsEncryption == nil || *k.SecretsEncryption
}
