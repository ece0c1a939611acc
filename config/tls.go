package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSFiles names the files of a TLS listener: the key tls of a listener.
type TLSFiles struct {
	CertFile          string // PEM certificate chain, the server's first (cert_file)
	KeyFile           string // PEM private key (key_file)
	ClientCAFile      string // PEM CA certificates that sign client certificates (client_ca_file); "" means client certificates are not asked for
	RequireClientCert bool   // refuse clients without a certificate signed by ClientCAFile (require_client_cert)
	MinVersion        string // "1.2" (default) or "1.3" (min_version)
}

// TLSConfig loads the files and returns the server's TLS configuration.
// An error is an *Error whose Key names the setting at fault ("cert_file",
// "key_file", "client_ca_file"; "" when the certificate and key do not go
// together).
func TLSConfig(f TLSFiles) (*tls.Config, error) {
	cfg, sub, err := f.config()
	if err != nil {
		return nil, &Error{Key: sub, Err: err}
	}
	return cfg, nil
}

// config returns the TLS configuration, or an error and the key of the
// setting at fault ("cert_file", ...; "" for the whole).
func (f TLSFiles) config() (*tls.Config, string, error) {
	switch {
	case f.CertFile == "":
		return nil, "cert_file", errors.New("required")
	case f.KeyFile == "":
		return nil, "key_file", errors.New("required")
	case f.RequireClientCert && f.ClientCAFile == "":
		return nil, "client_ca_file", errors.New("required by require_client_cert")
	}
	certPEM, err := os.ReadFile(f.CertFile)
	if err != nil {
		return nil, "cert_file", err
	}
	keyPEM, err := os.ReadFile(f.KeyFile)
	if err != nil {
		return nil, "key_file", err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, "", fmt.Errorf("%s and %s: %w", f.CertFile, f.KeyFile, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if f.MinVersion == "1.3" {
		cfg.MinVersion = tls.VersionTLS13
	}
	if f.ClientCAFile != "" {
		pem, err := os.ReadFile(f.ClientCAFile)
		if err != nil {
			return nil, "client_ca_file", err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, "client_ca_file", fmt.Errorf("no PEM certificate found in %s", f.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if f.RequireClientCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return cfg, "", nil
}
