{{/* Chart name. */}}
{{- define "aiwatt.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: RELEASE-NAME, or RELEASE when it already contains NAME. Truncated to 55 characters so that
"-carbon" still fits in 63.
*/}}
{{- define "aiwatt.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 55 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of the carbon service's resources. */}}
{{- define "aiwatt.carbon.fullname" -}}
{{- printf "%s-carbon" (include "aiwatt.fullname" .) }}
{{- end }}

{{/*
Name of the report CronJob and its ConfigMap. A CronJob's name is at most 52 characters (its Jobs add
an 11-character suffix), so the full name is cut to 44 before "-reports".
*/}}
{{- define "aiwatt.reports.fullname" -}}
{{- printf "%s-reports" (include "aiwatt.fullname" . | trunc 44 | trimSuffix "-") }}
{{- end }}

{{/* chart label value. */}}
{{- define "aiwatt.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "aiwatt.labels" -}}
helm.sh/chart: {{ include "aiwatt.chart" . }}
app.kubernetes.io/name: {{ include "aiwatt.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aiwatt
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of the agent. */}}
{{- define "aiwatt.agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aiwatt.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end }}

{{/* Selector labels of the carbon service. */}}
{{- define "aiwatt.carbon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aiwatt.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: carbon
{{- end }}

{{/* Labels of the dashboards, rules and other non-workload resources. */}}
{{- define "aiwatt.monitoringLabels" -}}
{{ include "aiwatt.labels" . }}
app.kubernetes.io/component: monitoring
{{- end }}

{{/* ServiceAccount of the agent. */}}
{{- define "aiwatt.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "aiwatt.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository@digest, or repository:tag (default appVersion). */}}
{{- define "aiwatt.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The agent's configuration file. */}}
{{- define "aiwatt.agent.config" -}}
# aiwatt agent configuration (--config.file), rendered from the chart's agent.config.
{{- if .Values.agent.config }}
{{ toYaml .Values.agent.config }}
{{- else }}
{}
{{- end }}
{{- end }}

{{/* The carbon service's configuration file. */}}
{{- define "aiwatt.carbon.config" -}}
# aiwatt carbon configuration (--config.file), rendered from the chart's carbon.config.
{{ toYaml .Values.carbon.config }}
{{- end }}

{{/* Is the Prometheus Operator CRD of kind (argument: list of context and kind) installed? */}}
{{- define "aiwatt.hasMonitoringCRD" -}}
{{- $ctx := index . 0 }}
{{- $kind := index . 1 }}
{{- if $ctx.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" $kind) }}true{{ end }}
{{- end }}

{{/* Relabelings of the agent's ServiceMonitor or PodMonitor: the node label first. */}}
{{- define "aiwatt.agent.relabelings" -}}
{{- $m := . }}
{{- if or $m.attachNodeLabel $m.relabelings }}
relabelings:
{{- if $m.attachNodeLabel }}
  - sourceLabels: [__meta_kubernetes_pod_node_name]
    targetLabel: node
    action: replace
{{- end }}
{{- with $m.relabelings }}
{{ toYaml . | indent 2 }}
{{- end }}
{{- end }}
{{- with $m.metricRelabelings }}
metricRelabelings:
{{ toYaml . | indent 2 }}
{{- end }}
{{- end }}

{{/* The report configuration file (aiwatt report --config). */}}
{{- define "aiwatt.reports.config" -}}
# aiwatt report configuration (--config), rendered from the chart's reports.config.
{{- if .Values.reports.config }}
{{ toYaml .Values.reports.config }}
{{- else }}
{}
{{- end }}
{{- end }}

{{/*
The report CronJob's wrapper (POSIX sh, GNU date). It computes the period before the moment it runs (or
AIWATT_REPORT_NOW, RFC 3339 or YYYY-MM-DD, for tests and backfills), in UTC, and runs
`aiwatt report --from FROM --to TO --out /reports/DIR` with the container's args appended:
  previousDay    FROM = yesterday,                    TO = today,                       DIR = FROM (YYYY-MM-DD)
  previousWeek   FROM = Monday of the previous week,  TO = Monday of the current week,  DIR = ISO week of FROM (GGGG-Www)
  previousMonth  FROM = 1st of the previous month,    TO = 1st of the current month,    DIR = YYYY-MM of FROM
TO is exclusive. The kubelet expands $(NAME) of a declared environment variable and turns $$ into $ in
command and args: the script has neither.
*/}}
{{- define "aiwatt.reports.script" -}}
set -eu
now=${AIWATT_REPORT_NOW:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}
today=$(date -u -d "$now" +%Y-%m-%d)
case "$AIWATT_REPORT_PERIOD" in
  previousDay)
    to=$today
    from=$(date -u -d "$to -1 day" +%Y-%m-%d)
    dir=$from
    ;;
  previousWeek)
    dow=$(date -u -d "$today" +%u)
    to=$(date -u -d "$today -$((dow - 1)) days" +%Y-%m-%d)
    from=$(date -u -d "$to -7 days" +%Y-%m-%d)
    dir=$(date -u -d "$from" +%G-W%V)
    ;;
  previousMonth)
    to=$(date -u -d "$today" +%Y-%m-01)
    from=$(date -u -d "$to -1 month" +%Y-%m-01)
    dir=$(date -u -d "$from" +%Y-%m)
    ;;
  *)
    echo "aiwatt-report: unknown period \"$AIWATT_REPORT_PERIOD\" (want previousDay, previousWeek or previousMonth)" >&2
    exit 2
    ;;
esac
echo "aiwatt-report: $AIWATT_REPORT_PERIOD: --from $from --to $to --out /reports/$dir" >&2
exec aiwatt report --from "$from" --to "$to" --out "/reports/$dir" "$@"
{{- end }}
