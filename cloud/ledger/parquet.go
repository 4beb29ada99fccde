package ledger

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/snappy"
)

// ParquetRow is one row of the Parquet export: the CSV export's columns, in
// CSVHeader's order and with the same names, typed for a warehouse. Every
// column is REQUIRED.
//
//	provider … metric, unit, source  BYTE_ARRAY, STRING (UTF8)
//	period_start, period_end         INT32, DATE (UTC calendar day; end exclusive)
//	value                            DOUBLE
//	fetched_at                       INT64, TIMESTAMP(MICROS, isAdjustedToUTC=true)
//	revision                         INT64
//
// The DATE columns are int32 days since the Unix epoch rather than
// time.Time: parquet-go v0.32.0 writes a time.Time tagged "date" as a wrong
// day number. Use DateOf and Days to convert.
//
// fetched_at is truncated to the microsecond (the ledger and the CSV keep
// the fetch time to the nanosecond); BigQuery's TIMESTAMP holds no more.
type ParquetRow struct {
	Provider     string    `parquet:"provider"`
	Account      string    `parquet:"account"`
	Service      string    `parquet:"service"`
	Region       string    `parquet:"region"`
	Period       string    `parquet:"period"`
	ModelVersion string    `parquet:"model_version"`
	Metric       string    `parquet:"metric"`
	PeriodStart  int32     `parquet:"period_start,date"` // days since 1970-01-01
	PeriodEnd    int32     `parquet:"period_end,date"`   // days since 1970-01-01
	Value        float64   `parquet:"value"`
	Unit         string    `parquet:"unit"`
	Source       string    `parquet:"source"`
	FetchedAt    time.Time `parquet:"fetched_at,timestamp(microsecond:utc)"`
	Revision     int64     `parquet:"revision"`
}

// parquetSchema is ParquetRow's schema under the name of the export.
var parquetSchema = parquet.NewSchema("aiwatt_cloud_ledger", parquet.SchemaOf(ParquetRow{}))

// Days returns the DATE value of t's UTC calendar day: days since 1970-01-01.
func Days(t time.Time) int32 {
	return int32(t.UTC().Truncate(24*time.Hour).Unix() / 86400)
}

// DateOf returns midnight UTC of a DATE value.
func DateOf(days int32) time.Time { return time.Unix(int64(days)*86400, 0).UTC() }

// ParquetRows converts ledger rows to Parquet export rows, in the same order.
func ParquetRows(rows []Row) ([]ParquetRow, error) {
	out := make([]ParquetRow, len(rows))
	for i, r := range rows {
		start, err := time.Parse(time.DateOnly, r.PeriodStart)
		if err != nil {
			return nil, fmt.Errorf("row %s: period_start: %w", r.Key, err)
		}
		end, err := time.Parse(time.DateOnly, r.PeriodEnd)
		if err != nil {
			return nil, fmt.Errorf("row %s: period_end: %w", r.Key, err)
		}
		fetched, err := time.Parse(timeFmt, r.FetchedAt)
		if err != nil {
			return nil, fmt.Errorf("row %s: fetched_at: %w", r.Key, err)
		}
		out[i] = ParquetRow{
			Provider: r.Provider, Account: r.Account, Service: r.Service, Region: r.Region, Period: r.Period,
			ModelVersion: r.ModelVersion, Metric: string(r.Metric),
			PeriodStart: Days(start), PeriodEnd: Days(end),
			Value: r.Value, Unit: r.Unit, Source: r.Source,
			FetchedAt: fetched.UTC().Truncate(time.Microsecond),
			Revision:  int64(r.Revision),
		}
	}
	return out, nil
}

// WriteParquet writes every current row, in the CSV export's order, as one
// Parquet file (Snappy-compressed, the codec BigQuery and Snowflake both
// read) with the ParquetRow schema. The output depends only on the ledger's
// rows: exporting an unchanged ledger again gives the same bytes.
func (l *Ledger) WriteParquet(ctx context.Context, w io.Writer) error {
	rows, err := l.Rows(ctx)
	if err != nil {
		return err
	}
	prows, err := ParquetRows(rows)
	if err != nil {
		return err
	}
	pw := parquet.NewGenericWriter[ParquetRow](w, parquetSchema, parquet.Compression(&snappy.Codec{}))
	if _, err := pw.Write(prows); err != nil {
		return fmt.Errorf("write parquet rows: %w", err)
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("finish parquet file: %w", err)
	}
	return nil
}
