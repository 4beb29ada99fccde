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
