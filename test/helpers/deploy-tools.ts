/**
 * The validators of deploy/ (installed by deploy/tools/install.sh, which .ci/run runs): where they
 * are, and whether a test may skip without them. In CI (CI=true) a missing tool is a failure; on a
 * developer's machine the test skips with the command that installs it.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

export const ROOT = resolve(import.meta.dirname, '../..')
const TOOLS = join(ROOT, '.tools')
export const INSTALL_HINT = 'bash deploy/tools/install.sh'

export const inCI = (): boolean => /^(1|true|yes)$/i.test(process.env.CI ?? '')

function onPath(name: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : undefined
}

export function dockerCompose(): string | undefined {
  return onPath('docker-compose')
}

export function kubeconform(): string | undefined {
  const local = join(TOOLS, 'bin', 'kubeconform')
  return existsSync(local) ? local : onPath('kubeconform')
}

/** The Kubernetes versions the manifests are validated against: install.sh's K8S_VERSIONS line. */
export function k8sVersions(): string[] {
  const script = readFileSync(join(ROOT, 'deploy/tools/install.sh'), 'utf8')
  const m = /^K8S_VERSIONS="([^"]+)"$/m.exec(script)
  if (!m) throw new Error('deploy/tools/install.sh has no K8S_VERSIONS="…" line')
  return m[1]!.split(/\s+/)
}

/** kubeconform's schema location template for the offline schemas install.sh writes */
export function k8sSchemaLocation(): string {
  return `${TOOLS}/k8s-schemas/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json`
}

export function k8sSchemasPresent(version: string): boolean {
  return existsSync(join(TOOLS, 'k8s-schemas', `v${version}-standalone-strict`, 'deployment-apps-v1.json'))
}

/**
 * YAML documents as JSON. No YAML parser is among the project's npm packages; PyYAML is a dependency
 * of Debian's docker-compose, so the interpreter named on docker-compose's first line has it.
 */
export function yamlDocuments(text: string): unknown[] {
  const compose = dockerCompose()
  if (!compose) throw new Error(`docker-compose is not installed (${INSTALL_HINT})`)
  const shebang = /^#!\s*(\S+)/.exec(readFileSync(compose, 'utf8').split('\n', 1)[0] ?? '')
  const python = shebang?.[1] ?? 'python3'
  const out = execFileSync(
    python,
    [
      '-c',
      'import json,sys,yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d is not None]))',
    ],
    { input: text, encoding: 'utf8' },
  )
  return JSON.parse(out) as unknown[]
}

/** undefined when the tool is there; else why the test may skip (locally) or must fail (CI) */
export function missing(what: string, present: boolean): string | undefined {
  return present ? undefined : `${what} is not installed: run ${INSTALL_HINT}`
}
