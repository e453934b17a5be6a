{{/* The release's full name: fullnameOverride, else the release name (with nameOverride, both). */}}
{{- define "incidentops.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if .Values.nameOverride -}}
{{- printf "%s-%s" .Release.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "incidentops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "incidentops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "incidentops.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the operator's pods: stable across upgrades. */}}
{{- define "incidentops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "incidentops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "incidentops.labels" -}}
app.kubernetes.io/name: {{ include "incidentops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "incidentops.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Secret holding the receiver's bearer token: the user's, or the chart's own. */}}
{{- define "incidentops.tokenSecretName" -}}
{{- default (printf "%s-receiver-token" (include "incidentops.fullname" .)) .Values.receiver.token.existingSecret -}}
{{- end -}}

{{/* The namespaces the operator watches; empty means the whole cluster. Its own is always among them. */}}
{{- define "incidentops.watchNamespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- append .Values.watchNamespaces .Release.Namespace | uniq | join "," -}}
{{- end -}}
{{- end -}}

{{/* The Secret with the receiver's certificate: the user's, or the one cert-manager issues for the chart. */}}
{{- define "incidentops.tlsSecretName" -}}
{{- if .Values.receiver.tls.existingSecret -}}
{{- .Values.receiver.tls.existingSecret -}}
{{- else if .Values.receiver.tls.certManager.issuerRef.name -}}
{{- printf "%s-receiver-tls" (include "incidentops.fullname" .) -}}
{{- else -}}
{{- fail "receiver.tls.enabled needs receiver.tls.existingSecret or receiver.tls.certManager.issuerRef.name" -}}
{{- end -}}
{{- end -}}

{{/* An alert's runbook_url annotation when metrics.prometheusRule.runbookUrl is set: its section there
(docs/operating.md's anchors are the alerts' names in lower case). */}}
{{- define "incidentops.runbook" -}}
{{- if .base }}
            runbook_url: {{ printf "%s#%s" .base (lower .alert) | quote }}
{{- end }}
{{- end -}}
