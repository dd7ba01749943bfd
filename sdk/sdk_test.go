package sdk_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/edgelog/edgelog/sdk"
	"github.com/edgelog/edgelog/sdk/sdktest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openEmbedded(t testing.TB, opts ...sdk.Option) *sdk.Embedded {
	t.Helper()
	e, err := sdk.Open(t.TempDir(), append([]sdk.Option{sdk.WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func dial(t testing.TB, url string, opts ...sdk.Option) *sdk.Remote {
	t.Helper()
	r, err := sdk.Dial(url, sdk.Manifest{AppID: "com.example.test", DisplayName: "test", Version: "1"}, append([]sdk.Option{sdk.WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestConformanceEmbedded(t *testing.T) {
	sdktest.Conformance(t, func(t *testing.T) sdk.EventLog { return openEmbedded(t) })
}

func TestConformanceRemote(t *testing.T) {
	sdktest.Conformance(t, func(t *testing.T) sdk.EventLog {
		e := openEmbedded(t, sdk.WithHTTP("127.0.0.1:0"))
		return dial(t, e.URL())
	})
}

func TestConformanceMemLog(t *testing.T) {
	sdktest.Conformance(t, func(t *testing.T) sdk.EventLog { return sdktest.NewMemLog("12D3KooWMem") })
}
