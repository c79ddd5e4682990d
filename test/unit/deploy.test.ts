/**
 * deploy/ checked without a container runtime (none runs where the tests run): `docker-compose
 * config` resolves compose.yaml, kubeconform validates every Kubernetes manifest against the JSON
 * schemas of the Kubernetes releases in deploy/tools/install.sh, and both are shown to reject a
 * broken file. On top of the schemas, the things a schema cannot know: every service runs a real
 * `breakid` command, probes hit the ops endpoints on the port the service listens on, every
 * container has requests and limits, every Secret and ConfigMap reference resolves, and the config
 * file in the ConfigMap passes breakid's own validation.
 *
 * The validators come from deploy/tools/install.sh (.ci/run runs it). Missing in CI (CI=true): the
 * tests fail. Missing locally: they skip, naming the command that installs them.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { loadConfig } from '../../app/config.ts'
import { SERVICE_METRICS_PORTS, type ServiceName } from '../../app/ops.ts'
import { COMMANDS } from '../../bin/cli.ts'
import {
  dockerCompose,
  inCI,
  k8sSchemaLocation,
  k8sSchemasPresent,
  k8sVersions,
  kubeconform,
  missing,
  ROOT,
  yamlDocuments,
} from '../helpers/deploy-tools.ts'

const OPS_SERVICES = Object.keys(SERVICE_METRICS_PORTS) as ServiceName[]

const composeMissing = missing('docker-compose', dockerCompose() !== undefined)
const kubeconformMissing = missing(
  'kubeconform or its schemas',
  kubeconform() !== undefined && k8sVersions().every(k8sSchemasPresent),
)
/** locally: skip with the reason; in CI: run, and fail on the first line */
const gate = (reason: string | undefined) => (reason && !inCI() ? { skip: reason } : {})
const requireTool = (reason: string | undefined) => {
  if (reason) assert.fail(`${reason} (CI=true: a missing validator fails the build)`)
}

const run = (cmd: string, args: string[], env: Record<string, string> = {}) =>
  spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env } })

type Json = Record<string, unknown>
const obj = (v: unknown): Json => (v && typeof v === 'object' ? (v as Json) : {})
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : [])

function assertKnownCommand(where: string, command: string | undefined): void {
  assert.ok(command, `${where}: no command`)
  assert.ok(
    command in COMMANDS,
    `${where}: "breakid ${command}" is not a command (${Object.keys(COMMANDS).join(', ')})`,
  )
}

describe('docker compose', () => {
  test('docker-compose config accepts compose.yaml and rejects a broken file', gate(composeMissing), () => {
    requireTool(composeMissing)
    const ok = run('docker-compose', ['-f', 'deploy/compose.yaml', 'config', '--quiet'])
    assert.equal(ok.status, 0, `docker-compose config failed:\n${ok.stderr}`)
    const dir = mkdtempSync(join(tmpdir(), 'breakid-compose-'))
    try {
      const broken = join(dir, 'compose.yaml')
      writeFileSync(broken, 'services:\n  a:\n    image: x\n    restart_policy: always\n')
      const bad = run('docker-compose', ['-f', broken, 'config', '--quiet'])
      assert.notEqual(bad.status, 0, 'the control: an unknown service key must be refused')
      assert.match(bad.stderr, /restart_policy/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test(
    'the stack: KRaft Kafka, ClickHouse, engine, consumers with ops endpoints, dashboard, Grafana',
    gate(composeMissing),
    () => {
      requireTool(composeMissing)
      const resolved = run('docker-compose', ['-f', 'deploy/compose.yaml', 'config'])
      assert.equal(resolved.status, 0, resolved.stderr)
      const services = obj(obj(yamlDocuments(resolved.stdout)[0]).services)
      for (const name of ['kafka', 'clickhouse', 'engine', 'dashboard', 'grafana', ...OPS_SERVICES])
        assert.ok(name in services, `service ${name}`)
      assert.ok(
        !Object.keys(services).some((s) => /zookeeper/i.test(s)),
        'no ZooKeeper: Kafka runs in KRaft mode',
      )

      const kafka = obj(services.kafka)
      assert.match(String(kafka.image), /^apache\/kafka:/)
      assert.match(String(obj(kafka.environment).KAFKA_PROCESS_ROLES), /controller/)
      assert.match(String(obj(services.clickhouse).image), /^clickhouse\/clickhouse-server:/)

      const breakid = Object.entries(services).filter(([, s]) => obj(s).build !== undefined)
      assert.ok(breakid.length >= 7, 'the breakid services are built from the Dockerfile')
      for (const [name, s] of breakid) {
        const svc = obj(s)
        const env = Object.fromEntries(
          Object.entries(obj(svc.environment)).map(([k, v]) => [k, String(v ?? '')]),
        )
        assert.doesNotThrow(
          () => loadConfig({}, env),
          `compose service ${name}: its environment is a valid config`,
        )
        if (arr(svc.entrypoint).length > 0) continue // webhook-sink runs node itself
        assertKnownCommand(`compose service ${name}`, arr(svc.command)[0] as string | undefined)
      }
      for (const name of OPS_SERVICES) {
        const svc = obj(services[name])
        const env = obj(svc.environment)
        const port = SERVICE_METRICS_PORTS[name]
        assert.equal(arr(svc.command)[0], name, `${name} runs breakid ${name}`)
        assert.equal(Number(env.BREAKID_METRICS_PORT ?? port), port, `${name}: ops port`)
        assert.equal(
          env.BREAKID_METRICS_HOST,
          '0.0.0.0',
          `${name}: ops endpoints reachable from outside the container`,
        )
        assert.ok(
          arr(svc.ports).some((p) => String(obj(p).target ?? p).includes(String(port))),
          `${name} publishes ${port}`,
        )
        const check = arr(obj(svc.healthcheck).test).join(' ')
        assert.match(check, /\/readyz/, `${name}: healthcheck on /readyz`)
        assert.match(String(env.KAFKA_BROKERS), /^kafka:9092$/)
        assert.match(String(env.CLICKHOUSE_URL), /@clickhouse:8123$/)
      }

      const grafana = obj(services.grafana)
      assert.match(String(obj(grafana.environment).GF_PLUGINS_PREINSTALL), /grafana-clickhouse-datasource/)
      const provider = readFileSync(join(ROOT, 'deploy/grafana/provisioning/dashboards/breakid.yaml'), 'utf8')
      const dashboardsAt = /^\s+path: (\S+)$/m.exec(provider)?.[1]
      assert.ok(
        // docker-compose 1.x writes volumes as `source:target:mode`, the Compose Spec as objects
        arr(grafana.volumes).some((v) => (obj(v).target ?? String(v).split(':')[1]) === dashboardsAt),
        `the dashboards are mounted where the provider reads them (${dashboardsAt})`,
      )
      for (const v of arr(grafana.volumes)) {
        const source = String(obj(v).source ?? String(v).split(':')[0])
        if (source.startsWith('/')) assert.ok(existsSync(source), `grafana mounts ${source}, which exists`)
      }
    },
  )
})

/** every manifest of deploy/k8s, parsed */
function manifests(): { file: string; doc: Json }[] {
  const dir = join(ROOT, 'deploy/k8s')
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((file) =>
      yamlDocuments(readFileSync(join(dir, file), 'utf8')).map((d) => ({ file, doc: obj(d) })),
    )
}

/** a container's environment as the kubelet would set it: literal values, Secret keys, field refs */
function containerEnv(c: Json, secrets: Map<unknown, Json>): Record<string, string> {
  const env: Record<string, string> = {}
  for (const e of arr(c.env).map(obj)) {
    const from = obj(e.valueFrom)
    const ref = obj(from.secretKeyRef)
    if (ref.name) env[String(e.name)] = String(secrets.get(ref.name)?.[String(ref.key)] ?? '')
    else if (from.fieldRef) env[String(e.name)] = 'pod-0'
    else env[String(e.name)] = String(e.value ?? '')
  }
  return env
}

describe('kubernetes manifests', () => {
  test(
    'kubeconform: every manifest valid for each Kubernetes release; a broken one is not',
    gate(kubeconformMissing),
    () => {
      requireTool(kubeconformMissing)
      const bin = kubeconform()!
      const validate = (version: string, ...paths: string[]) =>
        run(bin, [
          '-strict',
          '-summary',
          '-kubernetes-version',
          version,
          '-schema-location',
          k8sSchemaLocation(),
          // kustomization.yaml is kustomize's input, not a resource: its structure is checked below
          '-skip',
          'Kustomization',
          ...paths,
        ])
      const dir = mkdtempSync(join(tmpdir(), 'breakid-k8s-'))
      try {
        writeFileSync(
          join(dir, 'broken.yaml'),
          'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: two\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers: [{name: c, image: i, livenessprobe: {}}]\n',
        )
        for (const version of k8sVersions()) {
          const r = validate(version, 'deploy/k8s')
          assert.equal(r.status, 0, `kubeconform ${version}:\n${r.stdout}${r.stderr}`)
          assert.match(r.stdout, /Invalid: 0, Errors: 0/)
          assert.doesNotMatch(r.stdout, / 0 resources found/)
          const bad = validate(version, dir)
          assert.notEqual(bad.status, 0, 'the control: a wrong type and an unknown field must be refused')
          assert.match(bad.stdout, /livenessprobe/)
        }
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
  )

  test(
    'probes on the ops endpoints, requests and limits, references that resolve, a valid config file',
    gate(composeMissing),
    () => {
      requireTool(composeMissing) // the YAML parser comes with docker-compose
      const docs = manifests()
      const byKind = (kind: string) => docs.filter((d) => d.doc.kind === kind)
      const kustomization = obj(byKind('Kustomization')[0]?.doc)
      const listed = arr(kustomization.resources).map(String).sort()
      const files = [...new Set(docs.map((d) => d.file))].filter((f) => f !== 'kustomization.yaml').sort()
      assert.deepEqual(listed, files, 'kustomization.yaml lists every manifest')

      const secrets = new Map(byKind('Secret').map((s) => [obj(s.doc.metadata).name, obj(s.doc.stringData)]))
      const configMaps = new Map(byKind('ConfigMap').map((c) => [obj(c.doc.metadata).name, obj(c.doc.data)]))
      const workloads = [...byKind('Deployment'), ...byKind('StatefulSet')]
      const breakidEnvs: { where: string; env: Record<string, string> }[] = []
      assert.ok(workloads.length >= 8)
      const seen = new Set<string>()
      for (const { file, doc } of workloads) {
        const podSpec = obj(obj(obj(doc.spec).template).spec)
        for (const v of arr(podSpec.volumes)) {
          const cm = obj(obj(v).configMap).name
          if (cm) assert.ok(configMaps.has(cm), `${file}: ConfigMap ${cm} exists`)
        }
        for (const c of arr(podSpec.containers).map(obj)) {
          const where = `${file}/${c.name}`
          const res = obj(c.resources)
          for (const k of ['requests', 'limits'])
            for (const r of ['cpu', 'memory']) assert.ok(obj(res[k])[r], `${where}: ${k}.${r}`)
          assert.ok(c.livenessProbe && c.readinessProbe, `${where}: liveness and readiness probes`)
          for (const e of arr(c.env).map(obj)) {
            const ref = obj(obj(e.valueFrom).secretKeyRef)
            if (ref.name) {
              assert.ok(secrets.has(ref.name), `${where}: Secret ${ref.name}`)
              assert.ok(String(ref.key) in secrets.get(ref.name)!, `${where}: Secret key ${ref.key}`)
            }
          }
          if (c.image !== 'breakid') continue
          assertKnownCommand(where, arr(c.args)[0] as string | undefined)
          breakidEnvs.push({ where, env: containerEnv(c, secrets) })
          const service = arr(c.args)[0] as ServiceName
          if (!OPS_SERVICES.includes(service)) continue
          seen.add(service)
          const port = SERVICE_METRICS_PORTS[service]
          const ops = arr(c.ports)
            .map(obj)
            .find((p) => p.name === 'ops')
          assert.equal(ops?.containerPort, port, `${where}: ops port ${port}`)
          const env = Object.fromEntries(
            arr(c.env)
              .map(obj)
              .map((e) => [e.name, e.value]),
          )
          assert.equal(Number(env.BREAKID_METRICS_PORT), port, `${where}: listens where the probes look`)
          assert.deepEqual(
            obj(obj(c.livenessProbe).httpGet),
            { path: '/healthz', port: 'ops' },
            `${where}: liveness`,
          )
          assert.deepEqual(
            obj(obj(c.readinessProbe).httpGet),
            { path: '/readyz', port: 'ops' },
            `${where}: readiness`,
          )
        }
      }
      assert.deepEqual(
        [...seen].sort(),
        [...OPS_SERVICES].sort(),
        'a Deployment per service with ops endpoints',
      )

      // the config file mounted into every breakid pod is one breakid accepts
      const dir = mkdtempSync(join(tmpdir(), 'breakid-k8s-config-'))
      try {
        const file = join(dir, 'config.json')
        writeFileSync(file, String(configMaps.get('breakid-config')?.['config.json']))
        const cfg = loadConfig({ config: file }, {})
        assert.deepEqual(cfg.kafkaBrokers, ['kafka-0.kafka:9092'])
        assert.equal(cfg.metricsHost, '0.0.0.0')
        // and with each container's environment on top (Secret values included) it still is one
        for (const { where, env } of breakidEnvs) {
          assert.equal(env.BREAKID_CONFIG, '/etc/breakid/config.json', `${where}: reads the ConfigMap`)
          assert.doesNotThrow(() => loadConfig({ config: file }, env), `${where}: a valid configuration`)
        }
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
  )
})

describe('Dockerfile', () => {
  test('Node 20, npm ci, the CLI as entrypoint, no downloads, and every product folder in the image', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
    const instructions = dockerfile
      .replace(/\\\n/g, ' ')
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.trim().startsWith('#'))
    assert.match(instructions[0]!, /^FROM node:20[-.\w]*$/)
    assert.ok(instructions.some((l) => /^RUN npm ci\b/.test(l)))
    assert.ok(instructions.includes('ENTRYPOINT ["node", "bin/breakid.mjs"]'))
    for (const l of instructions.filter((i) => i.startsWith('RUN')))
      assert.doesNotMatch(l, /curl|wget|https?:\/\/|npx /, `no downloads at build time: ${l}`)
    // .dockerignore keeps out nothing the CLI loads: every folder below the CLI's layer goes in
    const ignored = new Set(
      readFileSync(join(ROOT, '.dockerignore'), 'utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#')),
    )
    for (const folder of [
      'app',
      'bin',
      'bus',
      'contract',
      'core',
      'detectors',
      'engine',
      'eval',
      'ingest',
      'notify',
      'queries',
      'replay',
      'store',
      'collect',
      'dashboard',
    ])
      assert.ok(!ignored.has(folder), `${folder} is in the image`)
    for (const kept of ['node_modules', '.cache', '.breakid', 'test', 'bench'])
      assert.ok(ignored.has(kept), `${kept} stays out of the image`)
  })
})
