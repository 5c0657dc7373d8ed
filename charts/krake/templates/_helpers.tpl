{{/* Name prefix of every object: the release name, plus "-krake" unless it says krake. */}}
{{- define "krake.fullname" -}}
{{- if contains "krake" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-krake" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object; pass (dict "root" $ "component" "api"). */}}
{{- define "krake.labels" -}}
{{ include "krake.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "krake.selectorLabels" -}}
app.kubernetes.io/name: krake
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "krake.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "krake.etcdHeadless" -}}
{{ include "krake.fullname" . }}-etcd-headless
{{- end -}}

{{/* Client URLs of every etcd member, comma separated. */}}
{{- define "krake.etcdEndpoints" -}}
{{- $root := . -}}
{{- $urls := list -}}
{{- range $i := until (int .Values.etcd.replicas) -}}
{{- $urls = append $urls (printf "http://%s-etcd-%d.%s.%s.svc:2379" (include "krake.fullname" $root) $i (include "krake.etcdHeadless" $root) $root.Release.Namespace) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}

{{/* The API URL the controllers use. */}}
{{- define "krake.apiUrl" -}}
{{ if .Values.tls.enabled }}https{{ else }}http{{ end }}://{{ include "krake.fullname" . }}-api.{{ .Release.Namespace }}.svc:{{ .Values.api.service.port }}
{{- end -}}

{{- define "krake.podSecurity" -}}
automountServiceAccountToken: false
serviceAccountName: {{ include "krake.fullname" . }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
