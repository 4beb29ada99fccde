package carbon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
)

// maxSecretBytes bounds how much of a secret file is read.
const maxSecretBytes = 64 << 10

// SecretRef says where a credential lives: in a file (e.g. a mounted
// Kubernetes Secret) or in an environment variable. Exactly one field must be
// set. There is deliberately no field for a literal value, so a strict YAML
// decoder refuses a key written into the config.
type SecretRef struct {
	// File is the path of a file holding the secret; surrounding whitespace
	// is trimmed.
	File string `yaml:"file,omitempty"`
	// Env is the name of an environment variable holding the secret.
	Env string `yaml:"env,omitempty"`
}

// IsZero reports whether neither field is set.
func (r SecretRef) IsZero() bool { return r.File == "" && r.Env == "" }

// Validate checks that exactly one of File and Env is set.
func (r SecretRef) Validate() error {
	switch {
	case r.File != "" && r.Env != "":
		return errors.New("secret: set only one of file and env")
	case r.IsZero():
		return errors.New("secret: set file or env")
	}
	return nil
}

// String names where the secret lives ("file:/path" or "env:NAME"), never its
// value.
func (r SecretRef) String() string {
	if r.File != "" {
		return "file:" + r.File
	}
	if r.Env != "" {
		return "env:" + r.Env
	}
	return "unset"
}

// Secret reads a credential on demand. The file is re-read on every Value
// call: secrets are used once per upstream request (which the Chain's cache
// keeps rare), so a rotated file (a Kubernetes Secret's atomic symlink swap,
// or a plain rewrite) takes effect on the next request even when its mtime
// and size did not change. A change is logged at info level, without the
// value.
//
// The value never appears in String, GoString, LogValue or any error.
type Secret struct {
	ref    SecretRef
	logger *slog.Logger

	mu   sync.Mutex
	last string // last value read, to notice rotation
	seen bool
}

// NewSecret returns a Secret for ref. logger may be nil.
func NewSecret(ref SecretRef, logger *slog.Logger) (*Secret, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Secret{ref: ref, logger: logger}, nil
}

// Ref returns where the secret lives.
func (s *Secret) Ref() SecretRef { return s.ref }

// Value reads the secret now. Errors name the file or variable, not the
// content.
func (s *Secret) Value() (string, error) {
	var v string
	switch {
	case s.ref.File != "":
		f, err := os.Open(s.ref.File)
		if err != nil {
			return "", fmt.Errorf("secret %s: %w", s.ref, scrubPathError(err))
		}
		b, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
		f.Close()
		if err != nil {
			return "", fmt.Errorf("secret %s: read failed", s.ref)
		}
		if len(b) > maxSecretBytes {
			return "", fmt.Errorf("secret %s: larger than %d bytes", s.ref, maxSecretBytes)
		}
		v = strings.TrimSpace(string(b))
	default:
		v = strings.TrimSpace(os.Getenv(s.ref.Env))
	}
	if v == "" {
		return "", fmt.Errorf("secret %s is empty", s.ref)
	}
	s.mu.Lock()
	changed := s.seen && s.last != v
	s.last, s.seen = v, true
	s.mu.Unlock()
	if changed {
		s.logger.Info("secret changed; using the new value", "secret", s.ref.String())
	}
	return v, nil
}

// scrubPathError keeps the operation and cause of a file error; the path is
// already in the message.
func scrubPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// String names where the secret lives, never its value.
func (s *Secret) String() string {
	if s == nil {
		return "secret(nil)"
	}
	return "secret(" + s.ref.String() + ")"
}

// GoString is String, so %#v does not dump the cached value.
func (s *Secret) GoString() string { return s.String() }

// LogValue makes slog print only where the secret lives.
func (s *Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Format implements fmt.Formatter so that every verb (%v, %+v, %#v, %s, %q,
// %x) prints only where the secret lives.
func (s *Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", s.String())
		return
	}
	io.WriteString(f, s.String())
}
