package energyql

import "fmt"

// Increase returns PromQL for how much the counter series matched by
// selector (a metric name with optional matchers) rose over window (a PromQL
// duration such as "30d"): last minus first sample in the window for every
// series without a reset there, increase() for the series with one. The
// result keeps each series' labels (without the metric name), so it can be
// wrapped in sum by (...).
func Increase(selector, window string) string {
	r := fmt.Sprintf("%s[%s]", selector, window)
	return fmt.Sprintf("((max_over_time(%s) - min_over_time(%s)) and (resets(%s) == 0) or increase(%s))", r, r, r, r)
}

// Resets returns PromQL for the number of series matched by selector that
// reset inside window, by the given labels ("" for one total); an empty
// result means none did.
func Resets(selector, window, by string) string {
	return fmt.Sprintf("count by (%s) (resets(%s[%s]) > 0)", by, selector, window)
}
