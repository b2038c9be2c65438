package privacy

import (
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

// maxCodecRequest bounds a codec request body: Temporal limits a payload to
// 2 MiB, and the UI sends the payloads of one event at a time.
const maxCodecRequest = 32 << 20

// CodecServerOptions configures CodecServer.
type CodecServerOptions struct {
	// Token, when set, must arrive as "Authorization: Bearer <token>"
	// (`temporal --codec-auth "Bearer <token>"`). When empty, only loopback
	// clients are served, like the dev server's own UI; behind a reverse
	// proxy on the same host every client looks local, so set a token there.
	Token string
	// Origins are the origins allowed by CORS (exact match of the Origin
	// header, such as "http://localhost:8233"): the Web UI calls the codec
	// server from the browser.
	Origins []string
}

// CodecServer serves Temporal's remote codec protocol with c: POST
// <prefix>/encode and <prefix>/decode with a JSON body {"payloads": [...]},
// for the Web UI (--ui-codec-endpoint) and `temporal workflow show
// --codec-endpoint`. Decoding reads each payload's subject from its
// metadata, so the whole history of any workflow decodes, except the
// payloads of erased customers, which are answered as they are (still
// encrypted): the UI shows the rest of the history and ciphertext where the
// person's data was. Encoding (rare: the UI's signal input) uses
// SystemSubject.
func CodecServer(c *Codec, opts CodecServerOptions) http.Handler {
	codec := converter.NewPayloadCodecHTTPHandler(readerCodec{c})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allowed := origin != "" && slices.Contains(opts.Origins, origin)
		if len(opts.Origins) > 0 {
			w.Header().Add("Vary", "Origin")
		}
		if allowed {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		switch r.Method {
		case http.MethodOptions:
			// A preflight carries no credentials, so it needs no token.
			if !allowed {
				http.Error(w, "origin not allowed", http.StatusForbidden)
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
			w.WriteHeader(http.StatusNoContent)
			return
		case http.MethodPost:
		default:
			w.Header().Set("Allow", "POST, OPTIONS")
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		if opts.Token != "" {
			if !bearer(r, opts.Token) {
				w.Header().Set("WWW-Authenticate", "Bearer")
				http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
				return
			}
		} else if !loopback(r.RemoteAddr) {
			http.Error(w, "codec server without a token serves loopback clients only", http.StatusForbidden)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxCodecRequest)
		codec.ServeHTTP(w, r)
	})
}

// bearer reports whether r carries "Authorization: Bearer <token>". The
// comparison takes the same time wherever the first difference is.
func bearer(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// loopback reports whether a request's RemoteAddr is 127.0.0.0/8 or ::1.
func loopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// readerCodec is the codec as a reader sees it: a payload whose key was
// destroyed (or never stored here) stays encrypted instead of failing the
// whole request, which would hide every other payload of the history. The
// worker keeps the strict Codec: it must never act on a payload it cannot
// read.
type readerCodec struct{ *Codec }

func (c readerCodec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		d, err := c.Codec.Decode([]*commonpb.Payload{p})
		switch {
		case errors.Is(err, ErrShredded) || errors.Is(err, ErrNoKey):
			out[i] = p
		case err != nil:
			return nil, err
		default:
			out[i] = d[0]
		}
	}
	return out, nil
}
