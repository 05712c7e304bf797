package attest_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	tdxclient "github.com/google/go-tdx-guest/client"
	tdxabi "github.com/google/go-tdx-guest/client/linuxabi"

	"github.com/teesign/teesign/internal/attest"
	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/simtee"
)

// fakeTDXDevice is a TDX guest device that offers only the TD report, as
// SecretVM's out-of-tree tdx-guest module does: report_data goes at offset
// 128 of the 1024-byte TDREPORT (in its REPORTMACSTRUCT).
type fakeTDXDevice struct{ reports atomic.Int32 }

func (d *fakeTDXDevice) Open(string) error { return nil }
func (d *fakeTDXDevice) Close() error      { return nil }
func (d *fakeTDXDevice) Ioctl(cmd uintptr, arg any) (uintptr, error) {
	req, ok := arg.(*tdxabi.TdxReportReq)
	if cmd != tdxabi.IocTdxGetReport || !ok {
		return 0, syscall.ENOTTY
	}
	d.reports.Add(1)
	copy(req.TdReport[128:192], req.ReportData[:])
	return 0, nil
}

// fakeQGS answers GET_QUOTE_REQ on ln as Intel's QGS does, with quotes
// of the simulated TEE; answer may replace the reply.
func fakeQGS(t *testing.T, ln net.Listener, answer func(conn net.Conn, report []byte) bool) {
	sim, err := simtee.NewTDX(t.TempDir(), simtee.Options{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				var n [4]byte
				if _, err := io.ReadFull(conn, n[:]); err != nil {
					return
				}
				msg := make([]byte, binary.BigEndian.Uint32(n[:]))
				if _, err := io.ReadFull(conn, msg); err != nil {
					return
				}
				le := binary.LittleEndian
				if le.Uint16(msg) != 1 || le.Uint32(msg[4:]) != 0 || int(le.Uint32(msg[8:])) != len(msg) || le.Uint32(msg[16:]) != 1024 || le.Uint32(msg[20:]) != 0 {
					t.Errorf("not a GET_QUOTE_REQ with a TD report: % x", msg[:24])
					return
				}
				report := msg[24:]
				if answer != nil && answer(conn, report) {
					return
				}
				var rd [64]byte
				copy(rd[:], report[128:192])
				ev, err := sim.Quote(context.Background(), rd)
				if err != nil {
					t.Error(err)
					return
				}
				conn.Write(qgsReply(0, ev.Raw))
			}()
		}
	}()
}

// qgsReply frames a GET_QUOTE_RESP.
func qgsReply(code uint32, q []byte) []byte {
	size := 24 + len(q)
	b := binary.BigEndian.AppendUint32(nil, uint32(size))
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = binary.LittleEndian.AppendUint32(b, uint32(size))
	b = binary.LittleEndian.AppendUint32(b, code)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(q)))
	return append(b, q...)
}

func qgsOptions(t *testing.T, ln net.Listener, dev *fakeTDXDevice) attest.Options {
	return attest.Options{
		TSM: absentTSM{}, SEVGuestDevice: "/nonexistent", TDXGuestDevice: "/dev/tdx_guest",
		OpenTDXDevice: func() (tdxclient.Device, error) { return dev, nil },
		QGS: attest.QGSOptions{Dial: func(ctx context.Context) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, ln.Addr().Network(), ln.Addr().String())
		}, ConfigFile: "/nonexistent"},
		RetryBackoff: 1,
	}
}

// A TDX guest without a configfs-tsm TDX provider (SecretVM's) gets its
// quote from the TD report device and the host's QGS, found by --tee tdx
// and --tee auto alike, with no probe quote.
func TestTDXThroughQGS(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "qgs"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fakeQGS(t, ln, nil)
	dev := &fakeTDXDevice{}
	for _, name := range []string{attest.TDX, attest.Auto} {
		p, err := attest.New(context.Background(), name, qgsOptions(t, ln, dev))
		if err != nil {
			t.Fatal(err)
		}
		if p.Name() != attest.TDX || p.Simulated() || p.Kind() != quote.TDX {
			t.Fatalf("%s: provider %s", name, p.Name())
		}
		if dev.reports.Load() != 0 && name == attest.TDX {
			t.Fatal("choosing the provider asked for a TD report")
		}
		var rd [64]byte
		rd[0], rd[63] = 1, 2
		ev, err := p.Quote(context.Background(), rd)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := quote.ReportData(ev.Raw); string(got) != string(rd[:]) {
			t.Fatalf("%s: the quote binds other report_data", name)
		}
	}
}

// QGS failures: an error code is reported by name, a QGS that is down is
// retried and then reported with where it was looked for, a short or
// oversized reply is refused.
func TestQGSFailures(t *testing.T) {
	var asked atomic.Int32
	cases := []struct {
		name  string
		reply func(conn net.Conn)
		want  string
		tries int32
	}{
		{"error code", func(c net.Conn) { c.Write(qgsReply(0x00012004, []byte{1})) }, "QGS error 0x12004 (invalid version)", 1},
		{"hangs up", func(c net.Conn) {}, "tried 4 times", 4},
		{"oversized", func(c net.Conn) { c.Write([]byte{0x7f, 0xff, 0xff, 0xff}) }, "not a QGS message", 1},
		{"wrong type", func(c net.Conn) {
			r := qgsReply(0, []byte{1})
			r[8] = 0
			c.Write(r)
		}, "not GET_QUOTE_RESP", 1},
		{"sizes disagree", func(c net.Conn) {
			r := qgsReply(0, []byte{1, 2, 3})
			r[4+20] = 9
			c.Write(r)
		}, "does not hold", 1},
	}
	for _, c := range cases {
		ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "qgs"))
		if err != nil {
			t.Fatal(err)
		}
		asked.Store(0)
		fakeQGS(t, ln, func(conn net.Conn, _ []byte) bool { asked.Add(1); c.reply(conn); return true })
		p, err := attest.New(context.Background(), attest.TDX, qgsOptions(t, ln, &fakeTDXDevice{}))
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Quote(context.Background(), [64]byte{})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "/etc/tdx-attest.conf") || asked.Load() != c.tries {
			t.Errorf("%s: %v after %d requests, want %q after %d", c.name, err, asked.Load(), c.want, c.tries)
		}
		ln.Close()
	}
	// A QGS that accepts and never answers: each request times out and
	// is made again, then the QGS is named.
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "qgs"))
	if err != nil {
		t.Fatal(err)
	}
	asked.Store(0)
	fakeQGS(t, ln, func(conn net.Conn, _ []byte) bool { asked.Add(1); time.Sleep(time.Second); return true })
	o := qgsOptions(t, ln, &fakeTDXDevice{})
	o.QGS.Timeout = 50 * time.Millisecond
	slow, err := attest.New(context.Background(), attest.TDX, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := slow.Quote(context.Background(), [64]byte{}); err == nil || !strings.Contains(err.Error(), "tried 4 times") || !strings.Contains(err.Error(), "Quote Generation Service") || asked.Load() != 4 {
		t.Errorf("slow QGS: %v after %d requests", err, asked.Load())
	}
	ln.Close()
	// Nobody listening: retried, then the QGS is named.
	dir := t.TempDir()
	o = qgsOptions(t, nil, &fakeTDXDevice{})
	o.QGS.Dial = func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(dir, "none"))
	}
	p, err := attest.New(context.Background(), attest.TDX, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Quote(context.Background(), [64]byte{}); err == nil || !strings.Contains(err.Error(), "Quote Generation Service (vsock CID 2 port 4050)") || !strings.Contains(err.Error(), "tried 4 times") {
		t.Errorf("QGS down: %v", err)
	}
}

// The QGS port comes from Intel's configuration file, as libtdx_attest
// reads it.
func TestQGSPortFromConfig(t *testing.T) {
	dir := t.TempDir()
	for text, want := range map[string]string{
		"# comment\nport = 4051\n": "port 4051",
		"  port=7\n":               "port 7",
		"other = 1\n":              "port 4050",
	} {
		conf := filepath.Join(dir, "tdx-attest.conf")
		os.WriteFile(conf, []byte(text), 0o644)
		o := qgsOptions(t, nil, &fakeTDXDevice{})
		o.QGS.ConfigFile = conf
		o.QGS.Dial = func(context.Context) (net.Conn, error) { return nil, errors.New("no QGS here") }
		p, err := attest.New(context.Background(), attest.TDX, o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Quote(context.Background(), [64]byte{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %s", text, err, want)
		}
	}
	os.WriteFile(filepath.Join(dir, "bad.conf"), []byte("port = many\n"), 0o644)
	o := qgsOptions(t, nil, &fakeTDXDevice{})
	o.QGS.ConfigFile = filepath.Join(dir, "bad.conf")
	if _, err := attest.New(context.Background(), attest.TDX, o); err == nil || !strings.Contains(err.Error(), "not a vsock port") {
		t.Errorf("bad port: %v", err)
	}
}
