package gate

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
)

// Formats accepted by Render.
const (
	FormatText  = "text"
	FormatJSON  = "json"
	FormatJUnit = "junit"
)

// Verdict words used in every format.
const (
	VerdictPass  = "pass"
	VerdictOver  = "over_budget"
	VerdictError = "error"
)

// Verdict names the outcome of a check that returned r and err.
func Verdict(r Result, err error) string {
	switch {
	case err != nil:
		return VerdictError
	case r.Over:
		return VerdictOver
	default:
		return VerdictPass
	}
}

// ExitCode is the process exit code for a verdict: 0 pass, 1 over budget,
// 2 error (no data included).
func ExitCode(r Result, err error) int {
	switch Verdict(r, err) {
	case VerdictPass:
		return 0
	case VerdictOver:
		return 1
	default:
		return 2
	}
}

// Render writes the verdict in format (text, json or junit).
func Render(w io.Writer, format string, r Result, err error) error {
	switch format {
	case FormatText, "":
		return renderText(w, r, err)
	case FormatJSON:
		return renderJSON(w, r, err)
	case FormatJUnit:
		return renderJUnit(w, r, err)
	}
	return fmt.Errorf("unknown format %q (want text, json or junit)", format)
}

func renderText(w io.Writer, r Result, err error) error {
	var e error
	switch Verdict(r, err) {
	case VerdictError:
		_, e = fmt.Fprintf(w, "aiwatt gate: ERROR: %v\n  query: %s\n", err, r.Query)
	case VerdictOver:
		_, e = fmt.Fprintf(w, "aiwatt gate: OVER BUDGET: %s used of %s (%.1f%%) over %s\n  query: %s\n",
			FormatEnergy(r.Joules), FormatEnergy(r.BudgetJoules), 100*r.Used, r.Window, r.Query)
	default:
		_, e = fmt.Fprintf(w, "aiwatt gate: within budget: %s used of %s (%.1f%%) over %s\n  query: %s\n",
			FormatEnergy(r.Joules), FormatEnergy(r.BudgetJoules), 100*r.Used, r.Window, r.Query)
	}
	for _, warn := range r.Warnings {
		if e == nil {
			_, e = fmt.Fprintf(w, "  prometheus warning: %s\n", warn)
		}
	}
	return e
}

type jsonVerdict struct {
	Verdict string `json:"verdict"`
	Error   string `json:"error,omitempty"`
	Result
	KWh       float64 `json:"kwh"`
	BudgetKWh float64 `json:"budget_kwh"`
}

func renderJSON(w io.Writer, r Result, err error) error {
	v := jsonVerdict{Verdict: Verdict(r, err), Result: r, KWh: r.Joules / 3.6e6, BudgetKWh: r.BudgetJoules / 3.6e6}
	if err != nil {
		v.Error = err.Error()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

type junitSuites struct {
	XMLName xml.Name   `xml:"testsuites"`
	Suites  []junitSet `xml:"testsuite"`
}

type junitSet struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Class   string        `xml:"classname,attr"`
	Name    string        `xml:"name,attr"`
	Failure *junitProblem `xml:"failure,omitempty"`
	Error   *junitProblem `xml:"error,omitempty"`
	Out     string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

func renderJUnit(w io.Writer, r Result, err error) error {
	c := junitCase{Class: "aiwatt.gate", Name: "energy budget: " + r.Query,
		Out: "used_joules=" + strconv.FormatFloat(r.Joules, 'f', -1, 64) + " budget_joules=" + strconv.FormatFloat(r.BudgetJoules, 'f', -1, 64)}
	set := junitSet{Name: "aiwatt energy budget", Tests: 1}
	switch Verdict(r, err) {
	case VerdictError:
		set.Errors = 1
		c.Error = &junitProblem{Message: err.Error(), Type: VerdictError, Text: err.Error()}
	case VerdictOver:
		set.Failures = 1
		msg := fmt.Sprintf("%s used of %s (%.1f%%) over %s", FormatEnergy(r.Joules), FormatEnergy(r.BudgetJoules), 100*r.Used, r.Window)
		c.Failure = &junitProblem{Message: msg, Type: VerdictOver, Text: msg}
	}
	set.Cases = []junitCase{c}
	if _, e := io.WriteString(w, xml.Header); e != nil {
		return e
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if e := enc.Encode(junitSuites{Suites: []junitSet{set}}); e != nil {
		return e
	}
	_, e := io.WriteString(w, "\n")
	return e
}
