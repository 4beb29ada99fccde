// Package ledger is the cloud pulls' store: a SQLite file (modernc.org/sqlite,
// no cgo) holding one row per provider, account, service, region, period,
// model version and metric.
//
// Semantics: a batch is applied in one transaction, all or nothing. A row
// whose value and unit are unchanged is left untouched (its source and fetch
// time stay those of the first fetch), so re-running a pull or a retry never
// double counts and leaves the ledger byte-for-byte the same. A row whose
// value or unit changed (a provider revising a month) replaces the current
// value, its revision number goes up by one, and the superseded value is
// kept in the revisions table with its own source and fetch time.
//
// It owns the schema and the CSV and Parquet exports and must not import
// provider SDKs.
package ledger

import (
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/inferensys/aiwatt/cloud"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

const schema = `
CREATE TABLE IF NOT EXISTS ledger (
	provider      TEXT NOT NULL,
	account       TEXT NOT NULL,
	service       TEXT NOT NULL,
	region        TEXT NOT NULL,
	period        TEXT NOT NULL,
	model_version TEXT NOT NULL,
	metric        TEXT NOT NULL,
	period_start  TEXT NOT NULL,
	period_end    TEXT NOT NULL,
	value         REAL NOT NULL,
	unit          TEXT NOT NULL,
	source        TEXT NOT NULL,
	fetched_at    TEXT NOT NULL,
	revision      INTEGER NOT NULL,
	PRIMARY KEY (provider, account, service, region, period, model_version, metric)
);
CREATE TABLE IF NOT EXISTS revisions (
	provider      TEXT NOT NULL,
	account       TEXT NOT NULL,
	service       TEXT NOT NULL,
	region        TEXT NOT NULL,
	period        TEXT NOT NULL,
	model_version TEXT NOT NULL,
	metric        TEXT NOT NULL,
	revision      INTEGER NOT NULL,
	value         REAL NOT NULL,
	unit          TEXT NOT NULL,
	source        TEXT NOT NULL,
	fetched_at    TEXT NOT NULL,
	superseded_at TEXT NOT NULL,
	PRIMARY KEY (provider, account, service, region, period, model_version, metric, revision)
);
`

// Ledger is an open ledger file. It is safe for concurrent use.
type Ledger struct {
	db *sql.DB
}

// Open opens (creating if needed) the ledger at path.
func Open(path string) (*Ledger, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, fmt.Errorf("open ledger %s: %w", path, err)
	}
	// One writer at a time: SQLite serialises writes anyway, and a single
	// connection keeps transactions from failing with SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("create ledger schema in %s: %w", path, err)
	}
	return &Ledger{db: db}, nil
}

// Close closes the file.
func (l *Ledger) Close() error { return l.db.Close() }

const timeFmt = time.RFC3339Nano

var _ cloud.Sink = (*Ledger)(nil)

// Apply writes a validated batch in one transaction; see the package doc
// for the semantics. Callers validate first (cloud.Validate); Apply
// validates again and refuses an invalid batch.
func (l *Ledger) Apply(ctx context.Context, b *cloud.Batch) (st cloud.ApplyStats, err error) {
	if err := cloud.Validate(b); err != nil {
		return st, err
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return st, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	fetched := b.FetchedAt.UTC().Format(timeFmt)
	for _, r := range b.Records {
		k := r.Key
		var (
			oldValue                  float64
			oldUnit, oldSrc, oldFetch string
			rev                       int
		)
		err = tx.QueryRowContext(ctx, `SELECT value, unit, source, fetched_at, revision FROM ledger
			WHERE provider=? AND account=? AND service=? AND region=? AND period=? AND model_version=? AND metric=?`,
			k.Provider, k.Account, k.Service, k.Region, k.Period, k.ModelVersion, string(k.Metric)).
			Scan(&oldValue, &oldUnit, &oldSrc, &oldFetch, &rev)
		switch {
		case err == sql.ErrNoRows:
			_, err = tx.ExecContext(ctx, `INSERT INTO ledger VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,1)`,
				k.Provider, k.Account, k.Service, k.Region, k.Period, k.ModelVersion, string(k.Metric),
				r.PeriodStart.UTC().Format(time.DateOnly), r.PeriodEnd.UTC().Format(time.DateOnly),
				r.Value, r.Unit, b.Source, fetched)
			if err != nil {
				return st, fmt.Errorf("insert %s: %w", k, err)
			}
			st.Inserted++
		case err != nil:
			return st, fmt.Errorf("read %s: %w", k, err)
		case oldValue == r.Value && oldUnit == r.Unit:
			st.Unchanged++
		default:
			_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO revisions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
				k.Provider, k.Account, k.Service, k.Region, k.Period, k.ModelVersion, string(k.Metric),
				rev, oldValue, oldUnit, oldSrc, oldFetch, fetched)
			if err != nil {
				return st, fmt.Errorf("keep revision of %s: %w", k, err)
			}
			_, err = tx.ExecContext(ctx, `UPDATE ledger SET value=?, unit=?, source=?, fetched_at=?, revision=?
				WHERE provider=? AND account=? AND service=? AND region=? AND period=? AND model_version=? AND metric=?`,
				r.Value, r.Unit, b.Source, fetched, rev+1,
				k.Provider, k.Account, k.Service, k.Region, k.Period, k.ModelVersion, string(k.Metric))
			if err != nil {
				return st, fmt.Errorf("revise %s: %w", k, err)
			}
			st.Revised++
		}
	}
	if err = tx.Commit(); err != nil {
		return st, fmt.Errorf("commit: %w", err)
	}
	return st, nil
}

// Row is one current ledger row.
type Row struct {
	cloud.Key
	PeriodStart, PeriodEnd string
	Value                  float64
	Unit                   string
	Source                 string
	FetchedAt              string
	Revision               int
}

// Revision is one superseded value.
type Revision struct {
	cloud.Key
	Revision     int
	Value        float64
	Unit         string
	Source       string
	FetchedAt    string
	SupersededAt string
}

// Rows returns every current row in key order.
func (l *Ledger) Rows(ctx context.Context) ([]Row, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT provider, account, service, region, period, model_version, metric,
		period_start, period_end, value, unit, source, fetched_at, revision FROM ledger
		ORDER BY provider, account, service, region, period, model_version, metric`)
	if err != nil {
		return nil, fmt.Errorf("query ledger: %w", err)
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var r Row
		var m string
		if err := rows.Scan(&r.Provider, &r.Account, &r.Service, &r.Region, &r.Period, &r.ModelVersion, &m,
			&r.PeriodStart, &r.PeriodEnd, &r.Value, &r.Unit, &r.Source, &r.FetchedAt, &r.Revision); err != nil {
			return nil, fmt.Errorf("scan ledger: %w", err)
		}
		r.Metric = cloud.Metric(m)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Revisions returns every superseded value in key and revision order.
func (l *Ledger) Revisions(ctx context.Context) ([]Revision, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT provider, account, service, region, period, model_version, metric,
		revision, value, unit, source, fetched_at, superseded_at FROM revisions
		ORDER BY provider, account, service, region, period, model_version, metric, revision`)
	if err != nil {
		return nil, fmt.Errorf("query revisions: %w", err)
	}
	defer rows.Close()
	var out []Revision
	for rows.Next() {
		var r Revision
		var m string
		if err := rows.Scan(&r.Provider, &r.Account, &r.Service, &r.Region, &r.Period, &r.ModelVersion, &m,
			&r.Revision, &r.Value, &r.Unit, &r.Source, &r.FetchedAt, &r.SupersededAt); err != nil {
			return nil, fmt.Errorf("scan revisions: %w", err)
		}
		r.Metric = cloud.Metric(m)
		out = append(out, r)
	}
	return out, rows.Err()
}

// CSVHeader is the first line of a CSV export.
var CSVHeader = []string{"provider", "account", "service", "region", "period", "model_version", "metric",
	"period_start", "period_end", "value", "unit", "source", "fetched_at", "revision"}

// WriteCSV writes every current row as CSV (RFC 4180) with CSVHeader.
func (l *Ledger) WriteCSV(ctx context.Context, w io.Writer) error {
	rows, err := l.Rows(ctx)
	if err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, r := range rows {
		if err := cw.Write([]string{r.Provider, r.Account, r.Service, r.Region, r.Period, r.ModelVersion, string(r.Metric),
			r.PeriodStart, r.PeriodEnd, strconv.FormatFloat(r.Value, 'g', -1, 64), r.Unit, r.Source, r.FetchedAt,
			strconv.Itoa(r.Revision)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
