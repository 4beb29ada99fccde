package workload

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestEncodeGRPCTimeout(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{1, "1n"},
		{99999999, "99999999n"},
		{100000000, "100000u"},
		{100000001, "100001u"}, // rounded up: the server never ends first
		{200 * time.Millisecond, "200000u"},
		{10 * time.Second, "10000000u"},
		{100 * time.Second, "100000m"},
		{100000 * time.Second, "100000S"},
		{100000000 * time.Second, "1666667M"},
		{1<<63 - 1, "2562048H"},
	} {
		if got := encodeGRPCTimeout(tc.d); got != tc.want {
			t.Errorf("encodeGRPCTimeout(%d) = %s, want %s", tc.d, got, tc.want)
		}
	}
}

func TestDecodeGRPCMessage(t *testing.T) {
	for in, want := range map[string]string{
		"plain":            "plain",
		"100%25 sure":      "100% sure",
		"uid %E2%89%A0 0":  "uid ≠ 0",
		"line%0Anext":      "line\nnext",
		"%e2%89%a0":        "≠",
		"bad %zz and %4":   "bad %zz and %4",
		"trailing %":       "trailing %",
		"%41%":             "A%",
		"":                 "",
		"%%41":             "%A",
		"mixed%20%GG%2041": "mixed %GG 41",
	} {
		if got := decodeGRPCMessage(in); got != want {
			t.Errorf("decodeGRPCMessage(%q) = %q, want %q", in, got, want)
		}
	}
}

// frame is one length-prefixed gRPC message with the given flag.
func frame(flag byte, msg []byte) []byte {
	n := len(msg)
	return append([]byte{flag, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, msg...)
}

// The response framing: one message, the status in the trailers (or in
// the headers when there is no message), everything else refused.
func TestReadUnaryResponse(t *testing.T) {
	ok := http.Header{"Grpc-Status": {"0"}}
	grpcHeader := http.Header{"Content-Type": {"application/grpc"}}
	for _, tc := range []struct {
		name    string
		code    int
		header  http.Header
		body    []byte
		trailer http.Header
		want    string // the message, or the error's text when err
		err     bool
	}{
		{"one message", 200, grpcHeader, frame(0, []byte("abc")), ok, "abc", false},
		{"empty message", 200, grpcHeader, frame(0, nil), ok, "", false},
		{"+proto content type", 200, http.Header{"Content-Type": {"application/grpc+proto"}}, frame(0, []byte("x")), ok, "x", false},
		{"compressed", 200, grpcHeader, frame(1, []byte("abc")), ok, "compressed response message refused", true},
		{"bad flag", 200, grpcHeader, frame(2, []byte("abc")), ok, "flag 0x2", true},
		{"over the cap", 200, grpcHeader, frame(0, make([]byte, 17)), ok, "17 bytes, limit 16", true},
		{"at the cap", 200, grpcHeader, frame(0, bytes.Repeat([]byte("y"), 16)), ok, strings.Repeat("y", 16), false},
		{"truncated message", 200, grpcHeader, frame(0, []byte("abc"))[:6], ok, "unexpected EOF", true},
		{"truncated header", 200, grpcHeader, []byte{0, 0}, ok, "header: unexpected EOF", true},
		{"two messages", 200, grpcHeader, append(frame(0, []byte("a")), frame(0, []byte("b"))...), ok, "more than one response message", true},
		{"no status", 200, grpcHeader, frame(0, []byte("a")), http.Header{}, "without grpc-status", true},
		{"no message", 200, grpcHeader, nil, ok, "status OK without a response message", true},
		{"error status", 200, grpcHeader, nil, http.Header{"Grpc-Status": {"13"}, "Grpc-Message": {"boom%21"}}, "code = Internal desc = boom!", true},
		{"error after a message", 200, grpcHeader, frame(0, []byte("a")), http.Header{"Grpc-Status": {"15"}}, "code = DataLoss desc = ", true},
		{"unknown code", 200, grpcHeader, nil, http.Header{"Grpc-Status": {"42"}}, "code = Code(42)", true},
		{"malformed status", 200, grpcHeader, frame(0, []byte("a")), http.Header{"Grpc-Status": {"ok"}}, `malformed grpc-status "ok"`, true},
		{"trailers-only", 200, http.Header{"Content-Type": {"application/grpc"}, "Grpc-Status": {"7"}, "Grpc-Message": {"no"}}, nil, nil, "code = PermissionDenied desc = no", true},
		{"trailers-only OK", 200, http.Header{"Content-Type": {"application/grpc"}, "Grpc-Status": {"0"}}, nil, nil, "status OK without a response message", true},
		{"HTTP error", 503, http.Header{}, []byte("busy"), nil, "HTTP status 503", true},
		{"not gRPC", 200, http.Header{"Content-Type": {"text/html"}}, frame(0, []byte("a")), ok, `content-type "text/html" is not gRPC`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tc.code, Header: tc.header, Body: io.NopCloser(bytes.NewReader(tc.body)), Trailer: tc.trailer}
			msg, err := readUnaryResponse(resp, 16)
			switch {
			case tc.err && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			case !tc.err && (err != nil || string(msg) != tc.want || msg == nil):
				t.Errorf("= %q, %v; want %q", msg, err, tc.want)
			}
		})
	}
}
