{{/* The chart's name, and the name of its objects: <release>-<chart>, or the release alone when it holds the chart's name. */}}
{{- define "keyward.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "keyward.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Selector labels of a component (broker, verifier, metrics): (dict "ctx" $ "component" "broker"). */}}
{{- define "keyward.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keyward.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Every object's labels: the selector labels, the version, the chart. */}}
{{- define "keyward.labels" -}}
{{ include "keyward.selectorLabels" . }}
app.kubernetes.io/version: {{ include "keyward.tag" .ctx | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "keyward.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "keyward.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "keyward.tag" .) }}
{{- end }}

{{/* Where the pods find their files. */}}
{{- define "keyward.secretsDir" -}}/etc/keyward/secrets{{- end }}

{{/*
keyward.literalSecret fails when a secret field holds a value rather than
${ENV}: (list "field path" value).
*/}}
{{- define "keyward.literalSecret" -}}
{{- $path := index . 0 }}{{ $v := index . 1 }}
{{- if and $v (not (regexMatch "^\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}$" (toString $v))) }}
{{- fail (printf "%s: a secret in values would land in a ConfigMap; put it in the existing Secret and name the file (%sFile: %s/KEY), or write ${ENV} and set the variable in env" $path (base $path) (include "keyward.secretsDir" .)) }}
{{- end }}
{{- end }}

{{/* keyward.yaml: broker.config plus what the chart owns (listen, metrics, the secret files, the store). */}}
{{- define "keyward.brokerConfig" -}}
{{- $b := .Values.broker }}
{{- $c := deepCopy (default dict $b.config) }}
{{- range $k := list "listen" "metrics" "sessionSecretFile" "sessionSecret" "store" }}
{{- if hasKey $c $k }}{{ fail (printf "broker.config.%s: the chart sets it; remove it (see values.yaml)" $k) }}{{ end }}
{{- end }}
{{- range $i, $u := $c.upstreams }}
{{- include "keyward.literalSecret" (list (printf "broker.config.upstreams[%d].clientSecret" $i) $u.clientSecret) }}
{{- end }}
{{- range $i, $cl := $c.clients }}
{{- include "keyward.literalSecret" (list (printf "broker.config.clients[%d].secret" $i) $cl.secret) }}
{{- end }}
{{- $keys := default dict $c.keys }}
{{- if hasKey $keys "encryptionKeyFile" }}{{ fail "broker.config.keys.encryptionKeyFile: the chart sets it; set broker.encryptionKeyFile: true and put the key in the Secret as kek" }}{{ end }}
{{- if $b.encryptionKeyFile }}
{{- $_ := set $keys "encryptionKeyFile" (printf "%s/kek" (include "keyward.secretsDir" .)) }}
{{- $_ := set $c "keys" $keys }}
{{- end }}
{{- $_ := set $c "listen" "0.0.0.0:8080" }}
{{- if .Values.metrics.enabled }}
{{- $_ := set $c "metrics" (dict "listen" "0.0.0.0:9090") }}
{{- end }}
{{- $_ := set $c "sessionSecretFile" (printf "%s/session-secret" (include "keyward.secretsDir" .)) }}
{{- if eq $b.store.type "bolt" }}
{{- $_ := set $c "store" (dict "type" "bolt" "path" "/var/lib/keyward/keyward.db") }}
{{- else if eq $b.store.type "postgres" }}
{{- $_ := set $c "store" (dict "type" "postgres" "dsnFile" (printf "%s/dsn" (include "keyward.secretsDir" .)) "maxConns" (int $b.store.postgres.maxConns)) }}
{{- else }}
{{- fail (printf "broker.store.type: %q is not bolt or postgres" $b.store.type) }}
{{- end }}
{{- toYaml $c }}
{{- end }}

{{/* verify.yaml: verifier.config plus listen and metrics. */}}
{{- define "keyward.verifierConfig" -}}
{{- $c := deepCopy (default dict .Values.verifier.config) }}
{{- range $k := list "listen" "metrics" }}
{{- if hasKey $c $k }}{{ fail (printf "verifier.config.%s: the chart sets it; remove it (see values.yaml)" $k) }}{{ end }}
{{- end }}
{{- $_ := set $c "listen" "0.0.0.0:4180" }}
{{- if .Values.metrics.enabled }}
{{- $_ := set $c "metrics" (dict "listen" "0.0.0.0:9090") }}
{{- end }}
{{- toYaml $c }}
{{- end }}

{{/* The pod spec fields both components share: (dict "ctx" $ "values" .Values.broker). */}}
{{- define "keyward.podCommon" -}}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext: {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
