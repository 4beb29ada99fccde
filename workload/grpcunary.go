package workload

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// gRPC status codes aiwatt gives a meaning to (the numbering is gRPC's).
const (
	grpcCanceled         = 1
	grpcDeadlineExceeded = 4
	grpcPermissionDenied = 7
)

// grpcCodeNames names the gRPC status codes 0–16 in error messages.
var grpcCodeNames = [...]string{
	"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
	"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
	"Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
	"Unauthenticated",
}

// StatusError is a gRPC status other than OK that the kubelet returned for
// a pod-resources call. DeadlineExceeded is context.DeadlineExceeded,
// Canceled is context.Canceled and PermissionDenied is fs.ErrPermission
// for errors.Is, so a source classifies them like any other read.
type StatusError struct {
	// Code is the gRPC status code (4 DeadlineExceeded, 7 PermissionDenied, …).
	Code uint32
	// Message is grpc-message, percent-decoded.
	Message string
}

// Error implements error in the form gRPC clients print.
func (e *StatusError) Error() string {
	name := "Code(" + strconv.FormatUint(uint64(e.Code), 10) + ")"
	if int(e.Code) < len(grpcCodeNames) {
		name = grpcCodeNames[e.Code]
	}
	return "rpc error: code = " + name + " desc = " + e.Message
}

// Is maps the codes that have a Go counterpart to it.
func (e *StatusError) Is(target error) bool {
	switch e.Code {
	case grpcCanceled:
		return target == context.Canceled
	case grpcDeadlineExceeded:
		return target == context.DeadlineExceeded
	case grpcPermissionDenied:
		return target == fs.ErrPermission
	}
	return false
}

// grpcUnary makes unary gRPC calls over HTTP/2 without TLS ("prior
// knowledge") on a unix socket, with net/http's HTTP/2 client: one
// connection, reused, dialled again when the server has gone away. It is
// all of gRPC the pod-resources API needs, without grpc-go in the binary.
type grpcUnary struct {
	tr *http.Transport
}

// newGRPCUnary returns a client of the gRPC server on the unix socket at
// path. Nothing is dialled until the first call.
func newGRPCUnary(path string) *grpcUnary {
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	var d net.Dialer
	return &grpcUnary{tr: &http.Transport{
		Protocols: protos,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		},
		DisableCompression: true,
	}}
}

// close closes the idle connection; a call in flight ends on its own.
func (g *grpcUnary) close() { g.tr.CloseIdleConnections() }

// grpcFrameHeader is the length-prefixed message framing: a compressed
// flag byte and a big-endian uint32 length.
const grpcFrameHeader = 5

// invoke calls method ("/package.Service/Method") with the serialized
// request message and returns the serialized response message, refusing
// one over maxMsg bytes. ctx's deadline goes to the server as grpc-timeout.
// A call whose request could not be delivered (the server restarted and
// the pooled connection is dead) is made once more on a new connection:
// the pod-resources methods only read.
func (g *grpcUnary) invoke(ctx context.Context, method string, req []byte, maxMsg int) ([]byte, error) {
	timeout := ""
	if dl, ok := ctx.Deadline(); ok {
		d := time.Until(dl)
		if d <= 0 {
			return nil, fmt.Errorf("before the call: %w", context.DeadlineExceeded)
		}
		timeout = encodeGRPCTimeout(d)
	}
	body := make([]byte, grpcFrameHeader+len(req))
	binary.BigEndian.PutUint32(body[1:grpcFrameHeader], uint32(len(req)))
	copy(body[grpcFrameHeader:], req)
	for attempt := 0; ; attempt++ {
		resp, err := g.roundTrip(ctx, method, body, timeout)
		if err == nil {
			return readUnaryResponse(resp, maxMsg)
		}
		if attempt > 0 || ctx.Err() != nil {
			return nil, err
		}
		g.tr.CloseIdleConnections()
	}
}

// roundTrip sends the request and returns the response headers.
func (g *grpcUnary) roundTrip(ctx context.Context, method string, body []byte, timeout string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://localhost"+method, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("request for %s: %w", method, err)
	}
	req.Header = http.Header{
		"Content-Type": {"application/grpc"},
		"Te":           {"trailers"},
		"User-Agent":   {"aiwatt"},
	}
	if timeout != "" {
		req.Header["Grpc-Timeout"] = []string{timeout}
	}
	resp, err := g.tr.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	return resp, nil
}

// readUnaryResponse reads the one response message and the status from
// the trailers (or from the headers of a trailers-only response), and
// closes the body.
func readUnaryResponse(resp *http.Response, maxMsg int) ([]byte, error) {
	defer resp.Body.Close()
	if ok, err := grpcStatus(resp.Header); ok { // trailers-only: a status and no message
		if err == nil {
			err = errOKWithoutMessage
		}
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/grpc") {
		return nil, fmt.Errorf("content-type %q is not gRPC", ct)
	}
	msg, err := readGRPCMessage(resp.Body, maxMsg)
	if err != nil {
		return nil, err
	}
	if msg != nil {
		// A unary response has one message: the body ends after it.
		var extra [1]byte
		if n, err := io.ReadFull(resp.Body, extra[:]); n > 0 {
			return nil, errors.New("more than one response message")
		} else if err != io.EOF {
			return nil, fmt.Errorf("response body: %w", err)
		}
	}
	ok, err := grpcStatus(resp.Trailer)
	switch {
	case !ok:
		return nil, errors.New("response without grpc-status")
	case err != nil:
		return nil, err
	case msg == nil:
		return nil, errOKWithoutMessage
	}
	return msg, nil
}

var errOKWithoutMessage = errors.New("status OK without a response message")

// readGRPCMessage reads one length-prefixed message; nil at the end of the
// body. A compressed message is refused (the client offers no encoding).
func readGRPCMessage(r io.Reader, maxMsg int) ([]byte, error) {
	var hdr [grpcFrameHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return nil, nil
		}
		return nil, fmt.Errorf("response message header: %w", err)
	}
	switch hdr[0] {
	case 0:
	case 1:
		return nil, errors.New("compressed response message refused")
	default:
		return nil, fmt.Errorf("response message flag %#x", hdr[0])
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if uint64(n) > uint64(maxMsg) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, n, maxMsg)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, fmt.Errorf("response message of %d bytes: %w", n, err)
	}
	return msg, nil
}

// grpcStatus reads grpc-status and grpc-message from h. ok is false when
// h has no grpc-status; err is nil for OK.
func grpcStatus(h http.Header) (ok bool, err error) {
	s := h.Get("Grpc-Status")
	if s == "" {
		return false, nil
	}
	code, perr := strconv.ParseUint(s, 10, 32)
	if perr != nil {
		return true, fmt.Errorf("malformed grpc-status %q", s)
	}
	if code == 0 {
		return true, nil
	}
	return true, &StatusError{Code: uint32(code), Message: decodeGRPCMessage(h.Get("Grpc-Message"))}
}

// decodeGRPCMessage undoes the percent-encoding of grpc-message; a "%"
// not followed by two hex digits is kept as it is.
func decodeGRPCMessage(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b = append(b, hi<<4|lo)
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// grpcTimeoutUnits are grpc-timeout's units, finest first.
var grpcTimeoutUnits = [...]struct {
	d    time.Duration
	unit byte
}{{time.Nanosecond, 'n'}, {time.Microsecond, 'u'}, {time.Millisecond, 'm'}, {time.Second, 'S'}, {time.Minute, 'M'}, {time.Hour, 'H'}}

// encodeGRPCTimeout writes d as grpc-timeout: at most 8 digits and a unit,
// in the finest unit that fits, rounded up so the server's deadline is
// never before the client's.
func encodeGRPCTimeout(d time.Duration) string {
	for _, u := range grpcTimeoutUnits {
		v := d / u.d
		if d%u.d != 0 {
			v++
		}
		if v < 1e8 {
			return strconv.FormatInt(int64(v), 10) + string(u.unit)
		}
	}
	return "99999999H"
}
