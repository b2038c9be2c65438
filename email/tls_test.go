package email_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/email/mailpit"
	"github.com/acme/lifecycle/email/mailpit/mailpittest"
)

// selfSigned writes a certificate for 127.0.0.1/localhost and its key,
// and returns their paths and a pool trusting the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "lifecycle test SMTP"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLSModes(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	trust := &tls.Config{RootCAs: pool}

	cases := []struct {
		mode string
		flag string // what the server demands
	}{
		{email.TLSStartTLS, "--smtp-require-starttls"},
		{email.TLSOpportunistic, "--smtp-require-starttls"},
		{email.TLSImplicit, "--smtp-require-tls"},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			srv := mailpittest.Start(t, "--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile, tc.flag,
				"--smtp-auth-accept-any")
			s := newSender(t, srv.SMTPAddr(), func(c *email.Config) {
				c.TLSMode, c.TLSConfig = tc.mode, trust
				c.Username, c.Password = "worker", "secret" // AUTH only over TLS here
			})
			ctx := testCtx(t)
			to := recipient("tls-" + tc.mode)
			for range 3 {
				if err := s.Send(ctx, transactional(to, "Over TLS")); err != nil {
					t.Fatalf("Send over %s: %v", tc.mode, err)
				}
			}
			if st := s.Stats(); st.Dials != 1 {
				t.Errorf("Stats = %+v, want 1 dial", st)
			}
			found, err := mailpit.New(srv.APIURL()).Search(ctx, "to:"+to)
			if err != nil || len(found) != 3 {
				t.Errorf("found %d, %v; want 3", len(found), err)
			}

			// Without trusting the certificate the handshake fails, and
			// that is worth retrying (after fixing the configuration).
			untrusting := newSender(t, srv.SMTPAddr(), func(c *email.Config) { c.TLSMode = tc.mode })
			err = untrusting.Send(ctx, transactional(recipient("untrusted"), "Untrusted"))
			if err == nil || email.IsPermanent(err) || !strings.Contains(err.Error(), "certificate") {
				t.Errorf("Send with an untrusted certificate = %v", err)
			}
		})
	}

	t.Run("starttls required but not offered", func(t *testing.T) {
		srv := mailpittest.Start(t)
		s := newSender(t, srv.SMTPAddr(), func(c *email.Config) { c.TLSMode = email.TLSStartTLS })
		err := s.Send(testCtx(t), transactional(recipient("nostarttls"), "No STARTTLS"))
		if err == nil || email.IsPermanent(err) || !strings.Contains(err.Error(), "STARTTLS") {
			t.Errorf("Send = %v, want a retryable error about STARTTLS", err)
		}
	})
}
