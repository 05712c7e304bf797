package attest

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	tdxclient "github.com/google/go-tdx-guest/client"
	tdxabi "github.com/google/go-tdx-guest/client/linuxabi"
	"github.com/mdlayher/vsock"

	"github.com/teesign/teesign/internal/quote"
)

// Where TDX guests without a configfs-tsm TDX provider (SecretVM's images,
// whose kernel has only an out-of-tree tdx-guest module offering the TD
// report) get quotes: the TD report from the guest device, turned into a
// quote by Intel's Quote Generation Service on the host, reached over
// vsock, as Intel's libtdx_attest does.
const (
	// DefaultQGSCID is the host's vsock context ID.
	DefaultQGSCID = 2
	// DefaultQGSPort is the QGS port when /etc/tdx-attest.conf names none.
	DefaultQGSPort = 4050
	// TDXAttestConf is Intel's libtdx_attest configuration file: a line
	// "port = N" names the QGS vsock port.
	TDXAttestConf = "/etc/tdx-attest.conf"
)

// tdxDevices are the TDX guest device's names: upstream Linux's, and the
// older out-of-tree module's.
var tdxDevices = [...]string{"/dev/tdx_guest", "/dev/tdx-guest"}

// QGSOptions say how to reach the host's QGS.
type QGSOptions struct {
	// CID and Port address the QGS over vsock; 0 means DefaultQGSCID, and
	// the port of ConfigFile or DefaultQGSPort.
	CID, Port uint32
	// ConfigFile is read for the port when Port is 0 ("" means
	// TDXAttestConf; a missing file means DefaultQGSPort).
	ConfigFile string
	// Dial connects to the QGS; nil means vsock. Tests pass their own.
	Dial func(ctx context.Context) (net.Conn, error)
	// Timeout bounds one quote request (default 30 s, the kernel's own
	// bound on a quote).
	Timeout time.Duration
}

// qgsProvider gets TDX quotes from the TD report device and the QGS.
type qgsProvider struct {
	device  string
	open    func() (tdxclient.Device, error)
	opts    QGSOptions
	where   string // "vsock CID 2 port 4050", for errors
	backoff time.Duration
}

func newQGS(o Options, device string) (*qgsProvider, error) {
	q := o.QGS
	if q.CID == 0 {
		q.CID = DefaultQGSCID
	}
	if q.Port == 0 {
		conf := q.ConfigFile
		if conf == "" {
			conf = TDXAttestConf
		}
		port, err := qgsPortFromConf(conf)
		if err != nil {
			return nil, err
		}
		q.Port = port
	}
	if q.Timeout <= 0 {
		q.Timeout = 30 * time.Second
	}
	p := &qgsProvider{device: device, open: o.OpenTDXDevice, opts: q, where: fmt.Sprintf("vsock CID %d port %d", q.CID, q.Port), backoff: o.RetryBackoff}
	if q.Dial == nil {
		p.opts.Dial = func(ctx context.Context) (net.Conn, error) { return vsock.Dial(q.CID, q.Port, nil) }
	}
	if p.open == nil {
		p.open = func() (tdxclient.Device, error) {
			d := &tdxclient.LinuxDevice{}
			return d, d.Open(device)
		}
	}
	return p, nil
}

// qgsPortFromConf reads "port = N" from Intel's configuration file; a
// missing file means the default port.
func qgsPortFromConf(path string) (uint32, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return DefaultQGSPort, nil
	}
	if err != nil {
		return 0, fmt.Errorf("tdx: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 64<<10))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(key) != "port" {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(val), 10, 32)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("tdx: %s: %q is not a vsock port", path, line)
		}
		return uint32(n), nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("tdx: %s: %w", path, err)
	}
	return DefaultQGSPort, nil
}

func (p *qgsProvider) Name() string     { return TDX }
func (p *qgsProvider) Kind() quote.Kind { return quote.TDX }
func (p *qgsProvider) Simulated() bool  { return false }

// Quote gets the TD report binding reportData, then its quote from the
// QGS, retrying what may pass (the QGS restarting, busy or slow).
func (p *qgsProvider) Quote(ctx context.Context, reportData [64]byte) (*quote.Evidence, error) {
	report, err := p.tdReport(reportData)
	if err != nil {
		return nil, err
	}
	var raw []byte
	err = retry(ctx, p.backoff, func() (bool, error) {
		raw, err = p.getQuote(ctx, report)
		return transientQGS(err), err
	})
	if err != nil {
		return nil, fmt.Errorf("tdx quote from the host's Quote Generation Service (%s): %w: is qgsd running on the host, and does %s name its port?", p.where, err, TDXAttestConf)
	}
	return checkHardwareQuote(quote.TDX, raw, nil, reportData)
}

// tdReport asks the TDX guest device for a TD report (TDX_CMD_GET_REPORT0),
// through go-tdx-guest's device.
func (p *qgsProvider) tdReport(reportData [64]byte) ([]byte, error) {
	d, err := p.open()
	if err != nil {
		return nil, openError("tdx", p.device, err)
	}
	defer d.Close()
	req := tdxabi.TdxReportReq{ReportData: reportData}
	res, err := d.Ioctl(tdxabi.IocTdxGetReport, &req)
	if err != nil {
		return nil, fmt.Errorf("tdx: TD report from %s: %w", p.device, err)
	}
	if res != uintptr(tdxabi.TdxAttestSuccess) {
		return nil, fmt.Errorf("tdx: TD report from %s: status %d", p.device, res)
	}
	return req.TdReport[:], nil
}

// Intel's QGS message protocol (qgs_msg_lib in Intel's DCAP repository):
// a header of major and minor version (uint16), type, size of the whole
// message and error code (uint32), little-endian; GET_QUOTE_REQ carries
// the report's and an ID list's sizes and then both; GET_QUOTE_RESP the
// selected ID's and the quote's sizes and then both. On the stream each
// message follows its length as 4 bytes, big-endian.
const (
	qgsMajorVersion = 1
	qgsGetQuoteReq  = 0
	qgsGetQuoteResp = 1
	qgsHeaderSize   = 16
	qgsMaxMessage   = 1 << 20
)

// qgsErrors names the QGS's own error codes.
var qgsErrors = map[uint32]string{
	0x00012001: "unexpected error", 0x00012002: "out of memory", 0x00012003: "invalid parameter",
	0x00012004: "invalid version", 0x00012005: "invalid type", 0x00012006: "invalid size", 0x00012007: "invalid code",
}

// encodeGetQuote is the framed GET_QUOTE_REQ for a TD report.
func encodeGetQuote(report []byte) []byte {
	size := qgsHeaderSize + 8 + len(report)
	b := make([]byte, 4, 4+size)
	binary.BigEndian.PutUint32(b, uint32(size))
	b = binary.LittleEndian.AppendUint16(b, qgsMajorVersion)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint32(b, qgsGetQuoteReq)
	b = binary.LittleEndian.AppendUint32(b, uint32(size))
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(report)))
	b = binary.LittleEndian.AppendUint32(b, 0) // no ID list: the QGS picks Intel's TD QE
	return append(b, report...)
}

// readFrame reads one length-prefixed message.
func readFrame(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, fmt.Errorf("reading the reply's length: %w", err)
	}
	size := binary.BigEndian.Uint32(n[:])
	if size < qgsHeaderSize || size > qgsMaxMessage {
		return nil, fmt.Errorf("reply of %d bytes: not a QGS message", size)
	}
	msg := make([]byte, size)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, fmt.Errorf("reading the %d-byte reply: %w", size, err)
	}
	return msg, nil
}

// decodeGetQuoteResp checks a GET_QUOTE_RESP and returns its quote.
func decodeGetQuoteResp(msg []byte) ([]byte, error) {
	le := binary.LittleEndian
	if len(msg) < qgsHeaderSize+8 {
		return nil, fmt.Errorf("reply of %d bytes is shorter than a GET_QUOTE_RESP", len(msg))
	}
	major, typ, size, code := le.Uint16(msg), le.Uint32(msg[4:]), le.Uint32(msg[8:]), le.Uint32(msg[12:])
	switch {
	case major != qgsMajorVersion:
		return nil, fmt.Errorf("QGS protocol version %d, not %d", major, qgsMajorVersion)
	case typ != qgsGetQuoteResp:
		return nil, fmt.Errorf("reply of type %d, not GET_QUOTE_RESP", typ)
	case int(size) != len(msg):
		return nil, fmt.Errorf("reply says %d bytes and has %d", size, len(msg))
	case code != 0:
		if name, ok := qgsErrors[code]; ok {
			return nil, fmt.Errorf("QGS error 0x%x (%s)", code, name)
		}
		return nil, fmt.Errorf("QGS error 0x%x (from quote generation: see sgx_ql_lib_common.h)", code)
	}
	idSize, quoteSize := uint64(le.Uint32(msg[16:])), uint64(le.Uint32(msg[20:]))
	if qgsHeaderSize+8+idSize+quoteSize != uint64(len(msg)) || quoteSize == 0 {
		return nil, fmt.Errorf("reply of %d bytes does not hold an ID of %d and a quote of %d bytes", len(msg), idSize, quoteSize)
	}
	return msg[qgsHeaderSize+8+idSize:], nil
}

// getQuote sends one GET_QUOTE_REQ over a new connection.
func (p *qgsProvider) getQuote(ctx context.Context, report []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	conn, err := p.opts.Dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := conn.Write(encodeGetQuote(report)); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	msg, err := readFrame(conn)
	if err != nil {
		return nil, err
	}
	return decodeGetQuoteResp(msg)
}

// transientQGS says whether a QGS failure may pass on a retry: the QGS not
// (yet) listening, dropping the connection, or not answering in time.
func transientQGS(err error) bool {
	var ne net.Error
	return err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) ||
		isErrno(err, append(transientErrnos, syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ENODEV)...))
}
