{{- define "incidentops.fullname" -}}
{{- default .Release.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "incidentops.serviceAccountName" -}}
{{- default (include "incidentops.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}
