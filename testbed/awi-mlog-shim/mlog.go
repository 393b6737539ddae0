// Package mlog is a minimal stand-in for monis.app/mlog (see go.mod): the API subset the
// azure-workload-identity webhook uses, logging JSON lines to stderr.
package mlog

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

type LogLevel string

const (
	LevelWarning LogLevel = "warning"
	LevelInfo    LogLevel = "info"
	LevelDebug   LogLevel = "debug"
	LevelTrace   LogLevel = "trace"
	LevelAll     LogLevel = "all"
)

type LogFormat string

const (
	FormatJSON LogFormat = "json"
	FormatCLI  LogFormat = "cli"
)

type LogSpec struct {
	Level  LogLevel  `json:"level,omitempty"`
	Format LogFormat `json:"format,omitempty"`
}

// logr verbosity of each level (same scale as upstream: klog 0/2/4/6/108).
func verbosity(l LogLevel) (int, bool) {
	switch l {
	case LevelWarning:
		return 0, true
	case "", LevelInfo:
		return 2, true
	case LevelDebug:
		return 4, true
	case LevelTrace:
		return 6, true
	case LevelAll:
		return 108, true
	}
	return 0, false
}

var current atomic.Int64

func init() { current.Store(2) }

// Enabled reports whether messages at level are written.
func Enabled(level LogLevel) bool {
	v, ok := verbosity(level)
	return ok && int64(v) <= current.Load()
}

// ValidateAndSetLogLevelAndFormatGlobally sets the level; the format is always JSON here.
func ValidateAndSetLogLevelAndFormatGlobally(_ context.Context, spec LogSpec) error {
	v, ok := verbosity(spec.Level)
	if !ok {
		return fmt.Errorf("invalid log level %q: use one of '', info, debug, trace, all", spec.Level)
	}
	if spec.Format != "" && spec.Format != FormatJSON && spec.Format != FormatCLI {
		return fmt.Errorf("invalid log format %q", spec.Format)
	}
	current.Store(int64(v))
	return nil
}

var root = funcr.NewJSON(func(obj string) { fmt.Fprintln(os.Stderr, obj) }, funcr.Options{
	LogTimestamp: true,
	Verbosity:    108,
})

// Setup returns a flush function (nothing is buffered here).
func Setup() func() { return func() {} }

// Logr returns the logr.Logger that controller-runtime logs through.
func Logr() logr.Logger { return logr.New(&filter{root.GetSink()}) }

type filter struct{ logr.LogSink }

func (f *filter) Enabled(level int) bool { return int64(level) <= current.Load() }
func (f *filter) WithValues(kv ...any) logr.LogSink {
	return &filter{f.LogSink.WithValues(kv...)}
}
func (f *filter) WithName(n string) logr.LogSink { return &filter{f.LogSink.WithName(n)} }

// Logger is the subset of upstream's mlog.Logger interface.
type Logger interface {
	Error(msg string, err error, keysAndValues ...any)
	Warning(msg string, keysAndValues ...any)
	WarningErr(msg string, err error, keysAndValues ...any)
	Info(msg string, keysAndValues ...any)
	InfoErr(msg string, err error, keysAndValues ...any)
	Debug(msg string, keysAndValues ...any)
	DebugErr(msg string, err error, keysAndValues ...any)
	Trace(msg string, keysAndValues ...any)
	TraceErr(msg string, err error, keysAndValues ...any)
	All(msg string, keysAndValues ...any)
	Always(msg string, keysAndValues ...any)
	WithValues(keysAndValues ...any) Logger
	WithName(name string) Logger
}

type logger struct{ l logr.Logger }

// New returns a Logger writing through Logr().
func New() Logger { return logger{Logr()} }

func (g logger) at(level LogLevel, msg string, err error, kv ...any) {
	v, _ := verbosity(level)
	if err != nil {
		kv = append(kv, "error", err.Error())
	}
	g.l.V(v).Info(msg, kv...)
}

func (g logger) Error(msg string, err error, kv ...any)      { g.l.Error(err, msg, kv...) }
func (g logger) Warning(msg string, kv ...any)               { g.at(LevelWarning, msg, nil, kv...) }
func (g logger) WarningErr(msg string, err error, kv ...any) { g.at(LevelWarning, msg, err, kv...) }
func (g logger) Info(msg string, kv ...any)                  { g.at(LevelInfo, msg, nil, kv...) }
func (g logger) InfoErr(msg string, err error, kv ...any)    { g.at(LevelInfo, msg, err, kv...) }
func (g logger) Debug(msg string, kv ...any)                 { g.at(LevelDebug, msg, nil, kv...) }
func (g logger) DebugErr(msg string, err error, kv ...any)   { g.at(LevelDebug, msg, err, kv...) }
func (g logger) Trace(msg string, kv ...any)                 { g.at(LevelTrace, msg, nil, kv...) }
func (g logger) TraceErr(msg string, err error, kv ...any)   { g.at(LevelTrace, msg, err, kv...) }
func (g logger) All(msg string, kv ...any)                   { g.at(LevelAll, msg, nil, kv...) }
func (g logger) Always(msg string, kv ...any)                { g.l.Info(msg, kv...) }
func (g logger) WithValues(kv ...any) Logger                 { return logger{g.l.WithValues(kv...)} }
func (g logger) WithName(name string) Logger                 { return logger{g.l.WithName(name)} }

// Fatal logs err and exits 1.
func Fatal(err error, keysAndValues ...any) {
	New().Error("fatal error", err, keysAndValues...)
	os.Exit(1)
}
