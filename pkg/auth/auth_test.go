package auth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFromRequest(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		want    string
		wantErr error
	}{
		{"bearer", []string{"Bearer abc.def.ghi"}, "abc.def.ghi", nil},
		{"scheme case-insensitive", []string{"bEaReR abc.def.ghi"}, "abc.def.ghi", nil},
		{"extra spaces", []string{"  Bearer    abc.def-_~+/==  "}, "abc.def-_~+/==", nil},
		{"no header", nil, "", ErrNoToken},
		{"basic scheme", []string{"Basic dXNlcjpwYXNz"}, "", ErrNoToken},
		{"scheme alone", []string{"Bearer"}, "", ErrInvalidToken},
		{"empty token", []string{"Bearer    "}, "", ErrInvalidToken},
		{"space inside token", []string{"Bearer abc def"}, "", ErrInvalidToken},
		{"quote in token", []string{`Bearer abc"def`}, "", ErrInvalidToken},
		{"padding only", []string{"Bearer ==="}, "", ErrInvalidToken},
		{"padding in the middle", []string{"Bearer ab=c"}, "", ErrInvalidToken},
		{"two headers", []string{"Bearer a", "Bearer b"}, "", ErrInvalidToken},
		{"non-ASCII", []string{"Bearer abç"}, "", ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "http://x/fhir/Task", nil)
			for _, h := range tt.headers {
				r.Header.Add("Authorization", h)
			}
			got, err := FromRequest(r)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("FromRequest() error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("FromRequest() = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzFromRequest(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer a.b.c", "Basic x", "Bearer", "Bearer a b", "Bearer ==", " Bearer x== ", "Bearer\tx"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r := &http.Request{Header: http.Header{"Authorization": {header}}}
		tok, err := FromRequest(r)
		if err != nil {
			if tok != "" {
				t.Fatalf("token %q returned with error %v", tok, err)
			}
			if !errors.Is(err, ErrNoToken) && !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("untyped error %v", err)
			}
			if strings.Contains(Challenge(err), "\n") {
				t.Fatalf("challenge spans lines")
			}
			return
		}
		if tok == "" || !isToken68(tok) || !strings.Contains(header, tok) {
			t.Fatalf("bad token %q from %q", tok, header)
		}
		// What FromRequest accepts, it accepts again in canonical form.
		r2 := &http.Request{Header: http.Header{"Authorization": {"Bearer " + tok}}}
		if tok2, err := FromRequest(r2); err != nil || tok2 != tok {
			t.Fatalf("round trip: %q, %v; want %q", tok2, err, tok)
		}
	})
}

func TestChallenge(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"no token", ErrNoToken, `Bearer realm="passerelle"`},
		{"nil", nil, `Bearer realm="passerelle"`},
		{"invalid", invalid("token expired", errors.New("exp 12")),
			`Bearer realm="passerelle", error="invalid_token", error_description="token expired"`},
		{"description sanitised", invalid("a\"b\\c\nd", nil),
			`Bearer realm="passerelle", error="invalid_token", error_description="abcd"`},
		{"bare sentinel", ErrInvalidToken, `Bearer realm="passerelle", error="invalid_token"`},
		{"unavailable", ErrUnavailable, `Bearer realm="passerelle"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Challenge(tt.err); got != tt.want {
				t.Errorf("Challenge() = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestInvalidTokenErrorWraps(t *testing.T) {
	cause := errors.New("cause")
	err := invalid("reason", cause)
	if !errors.Is(err, ErrInvalidToken) || !errors.Is(err, cause) {
		t.Fatalf("errors.Is fails on %v", err)
	}
	if errors.Is(err, ErrNoToken) {
		t.Fatal("invalid token error matches ErrNoToken")
	}
}

func TestPrincipalContext(t *testing.T) {
	if _, ok := PrincipalFrom(context.Background()); ok {
		t.Fatal("principal in empty context")
	}
	p := Principal{Subject: "s", Login: "ide.martin"}
	got, ok := PrincipalFrom(WithPrincipal(context.Background(), p))
	if !ok || got.Subject != "s" || got.Login != "ide.martin" {
		t.Fatalf("PrincipalFrom() = %+v, %v", got, ok)
	}
}

func TestDecodeClaims(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		claim   string
		check   func(t *testing.T, c claims)
		wantErr bool
	}{
		{
			name:    "aud string, scope string",
			payload: `{"sub":"s","aud":"passerelle","scope":"openid  profile","exp":1700000000.5,"preferred_username":"ide.martin"}`,
			claim:   "preferred_username",
			check: func(t *testing.T, c claims) {
				if !slices.Equal(c.Audience, []string{"passerelle"}) || !slices.Equal(c.Scopes, []string{"openid", "profile"}) ||
					c.Login != "ide.martin" || !c.HasLogin || c.Expiry != time.Unix(1700000000, 5e8).UTC() {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name:    "aud array, scp array, null login",
			payload: `{"aud":["a","b"],"scp":["x"],"preferred_username":null}`,
			claim:   "preferred_username",
			check: func(t *testing.T, c claims) {
				if !slices.Equal(c.Audience, []string{"a", "b"}) || !slices.Equal(c.Scopes, []string{"x"}) || c.HasLogin {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name:    "custom practitioner claim",
			payload: `{"SubjectNameID":"810012345678"}`,
			claim:   "SubjectNameID",
			check: func(t *testing.T, c claims) {
				if c.Login != "810012345678" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{name: "login not a string", payload: `{"preferred_username":42}`, claim: "preferred_username", wantErr: true},
		{name: "aud a number", payload: `{"aud":1}`, claim: "x", wantErr: true},
		{name: "exp a string", payload: `{"exp":"1700000000"}`, claim: "x", wantErr: true},
		{name: "exp negative", payload: `{"exp":-1}`, claim: "x", wantErr: true},
		{name: "exp huge", payload: `{"exp":1e300}`, claim: "x", wantErr: true},
		{name: "sub an object", payload: `{"sub":{}}`, claim: "x", wantErr: true},
		{name: "not an object", payload: `[1]`, claim: "x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := decodeClaims([]byte(tt.payload), tt.claim)
			if (err != nil) != tt.wantErr {
				t.Fatalf("decodeClaims() error = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func FuzzDecodeClaims(f *testing.F) {
	for _, s := range []string{
		`{"sub":"s","aud":"a","exp":1,"nbf":2.5,"scope":"a b","preferred_username":"u"}`,
		`{"aud":["a"],"scp":"x y","exp":null}`,
		`{"exp":1e308}`, `{}`, `null`, `{"aud":[1]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := decodeClaims(payload, "preferred_username")
		if err != nil {
			return
		}
		if c.Login != "" && !c.HasLogin {
			t.Fatalf("login %q reported absent", c.Login)
		}
		for _, d := range []time.Time{c.Expiry, c.NotBefore} {
			if !d.IsZero() && (d.Year() < 1970 || d.Year() > 9999) {
				t.Fatalf("date out of range: %v", d)
			}
		}
	})
}

func TestParseKeySetSkipsUnusableKeys(t *testing.T) {
	// One usable RSA key among an encryption key, a symmetric key, a key
	// type go-jose does not know and a short RSA key.
	body := `{"keys":[
	 {"kty":"oct","k":"c2VjcmV0","kid":"hmac"},
	 {"kty":"OKP","crv":"X448","x":"AAAA","kid":"x448"},
	 {"kty":"RSA","use":"enc","kid":"enc","n":"` + rsa2048N + `","e":"AQAB"},
	 {"kty":"RSA","kid":"short","n":"AQAB","e":"AQAB"},
	 {"kty":"RSA","use":"sig","kid":"good","alg":"RS256","n":"` + rsa2048N + `","e":"AQAB"}
	]}`
	keys, err := parseKeySet([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range keys {
		kids = append(kids, k.KeyID)
	}
	if !slices.Equal(kids, []string{"good"}) {
		t.Fatalf("kept %v, want [good]", kids)
	}
	if _, err := parseKeySet([]byte(`not json`)); err == nil {
		t.Fatal("garbage accepted")
	}
}

// rsa2048N is the modulus of some 2048-bit RSA key, base64url.
var rsa2048N = strings.Repeat("x", 341) + "w"
