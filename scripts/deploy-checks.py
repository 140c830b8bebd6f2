#!/usr/bin/env python3
"""Checks of deploy/ that schema validators cannot make; run by scripts/validate-deploy.sh.

  deploy-checks.py kubernetes SRC_DIR RENDERED.yaml BUMPED.yaml BUMPED_WORKERS
      SRC_DIR: deploy/kubernetes; RENDERED: `kubectl kustomize SRC_DIR`; BUMPED: the same rendered with
      the ConfigMap's WORKERS set to BUMPED_WORKERS. Checks that the worker count is written once (the
      ConfigMap's WORKERS) and drives the workers' Job, that the coordinator is a Job or StatefulSet whose
      run folder is a PersistentVolumeClaim, and that it resumes with --auto-resume.
  deploy-checks.py systemd UNITS_DIR SYSUSERS_ROOT
      Checks that every unit that restarts has a bounded restart rate that a failing start reaches, and
      that its User=/Group= exists: DynamicUser=yes, or created by a *.sysusers file in UNITS_DIR
      (SYSUSERS_ROOT: a folder systemd-sysusers --root has filled from them).
  deploy-checks.py slurm SBATCH_SCRIPT KEYGEN_DIR
      Checks that the script sets no job shape (#SBATCH --nodes/--ntasks...: they override or contradict
      the command line) and that every key file its comments name is one `ztrain keygen` writes.

Prints one `ok: ...` or `FAIL: ...` line per check; exits 1 if any failed. Needs PyYAML for `kubernetes`.
"""
import os
import re
import sys

failures = 0


def check(ok, what, why=""):
    global failures
    if ok:
        print(f"ok: {what}")
    else:
        failures += 1
        print(f"FAIL: {what}{': ' + why if why else ''}")


# ---------------------------------------------------------------- Kubernetes

def load_all(path):
    import yaml
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def pod_template(doc):
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind in ("Job", "StatefulSet", "Deployment"):
        return (spec.get("template") or {}).get("spec") or {}
    return None


def command_line(container):
    return " ".join(str(x) for x in (container.get("command") or []) + (container.get("args") or []))


def find(docs, kind, name):
    for d in docs:
        if d.get("kind") == kind and (d.get("metadata") or {}).get("name") == name:
            return d
    return None


def kubernetes(src, rendered_path, bumped_path, bumped_workers):
    sources = {}
    for name in sorted(os.listdir(src)):
        if name.endswith(".yaml") and name != "kustomization.yaml":
            sources[name] = load_all(os.path.join(src, name))
    rendered = load_all(rendered_path)
    bumped = load_all(bumped_path)

    # the worker count: once, as WORKERS in the ConfigMap
    configs = [d for d in rendered if d.get("kind") == "ConfigMap"]
    workers = None
    for c in configs:
        data = c.get("data") or {}
        if "WORKERS" in data:
            workers = data["WORKERS"]
    check(workers is not None and str(workers).isdigit() and int(workers) >= 1,
          "the ConfigMap holds the worker count (WORKERS)", f"WORKERS={workers!r}")
    derived = [k for c in configs for k in (c.get("data") or {}) if k in ("WORLD_SIZE", "COMPLETIONS", "PARALLELISM")]
    check(not derived, "no second copy of the worker count in the ConfigMap", f"also {', '.join(derived)}")
    literal = []
    for name, docs in sources.items():
        for d in docs:
            if d.get("kind") == "Job" and (d.get("spec") or {}).get("completionMode") == "Indexed":
                for field in ("completions", "parallelism", "maxFailedIndexes"):
                    if field in d["spec"]:
                        literal.append(f"{name}: spec.{field}: {d['spec'][field]}")
    check(not literal, "the indexed Job's size is not written in its file (kustomization.yaml sets it from WORKERS)",
          "; ".join(literal))
    job = next((d for d in rendered if d.get("kind") == "Job" and (d.get("spec") or {}).get("completionMode") == "Indexed"), None)
    bjob = next((d for d in bumped if d.get("kind") == "Job" and (d.get("spec") or {}).get("completionMode") == "Indexed"), None)
    if job is None or bjob is None:
        check(False, "an indexed Job of workers is rendered")
    else:
        spec, bspec = job["spec"], bjob["spec"]
        check(str(spec.get("completions")) == str(workers) and str(spec.get("parallelism")) == str(workers),
              f"the workers' Job runs WORKERS={workers} pods at once",
              f"completions={spec.get('completions')}, parallelism={spec.get('parallelism')}")
        check(bspec.get("completions") == bumped_workers and bspec.get("parallelism") == bumped_workers,
              f"changing WORKERS alone to {bumped_workers} changes the Job to {bumped_workers}",
              f"completions={bspec.get('completions')}, parallelism={bspec.get('parallelism')}")
        # sharded aggregation: each worker binds its peer port on its pod IP and declares that port
        for c in ((spec.get("template") or {}).get("spec") or {}).get("containers") or []:
            line = command_line(c)
            env = {e.get("name"): e for e in c.get("env") or []}
            pod_ip = ((env.get("POD_IP") or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
            peer_port = str((env.get("PEER_PORT") or {}).get("value", ""))
            ports = {str(p.get("containerPort")) for p in c.get("ports") or []}
            check(re.search(r"--peer-bind[= ]+\"?tcp://\$\{?POD_IP\}?:\$\{?PEER_PORT\}?", line) is not None
                  and pod_ip == "status.podIP" and peer_port.isdigit() and peer_port in ports,
                  f"Job/{job['metadata']['name']}: workers bind --peer-bind on their pod IP (downward API) and declare the peer port",
                  f"command: {line}; POD_IP from {pod_ip!r}, PEER_PORT={peer_port!r}, containerPorts {sorted(ports)}")
    for d in rendered:
        for c in (pod_template(d) or {}).get("containers") or []:
            line = command_line(c)
            if "launch" in line:
                ok = "--world-size" not in line or "$((WORKERS + 1))" in line
                check(ok, f"{d['kind']}/{d['metadata']['name']}: its world size derives from WORKERS",
                      f"command: {line}")

    # the coordinator: a Job or StatefulSet, its run folder on a claim, resuming with --auto-resume
    coordinators = []
    for d in rendered:
        for c in (pod_template(d) or {}).get("containers") or []:
            line = command_line(c)
            if re.search(r"\bztrain (coordinator|launch)\b", line) and re.search(r"--rank 0\b|\bcoordinator\b", line) \
                    and "--out" in line:
                coordinators.append((d, c, line))
    check(len(coordinators) == 1, "one coordinator workload", f"found {len(coordinators)}")
    claims = {(d.get("metadata") or {}).get("name") for d in rendered if d.get("kind") == "PersistentVolumeClaim"}
    for d, c, line in coordinators:
        where = f"{d['kind']}/{d['metadata']['name']}"
        check(d["kind"] in ("Job", "StatefulSet"), f"{where}: the coordinator is a Job or StatefulSet",
              "a bare Pod is not replaced when its node is lost, and its files go with it")
        m = re.search(r"--out[= ]+([^\s\"']+)", line)
        out = m.group(1) if m else ""
        mounts = [m for m in c.get("volumeMounts") or [] if out == m["mountPath"] or out.startswith(m["mountPath"].rstrip("/") + "/")]
        volumes = {v["name"]: v for v in (pod_template(d) or {}).get("volumes") or []}
        claim = None
        for m in mounts:
            v = volumes.get(m["name"]) or {}
            if "persistentVolumeClaim" in v:
                claim = v["persistentVolumeClaim"].get("claimName")
        templates = {(t.get("metadata") or {}).get("name") for t in (d.get("spec") or {}).get("volumeClaimTemplates") or []}
        if claim is None:
            claim = next((m["name"] for m in mounts if m["name"] in templates), None)
        check(claim is not None and (claim in claims or claim in templates),
              f"{where}: its run folder {out or '(no --out)'} is on a PersistentVolumeClaim that is defined",
              f"mounts {[m['name'] for m in mounts]}, volumes {list(volumes)}, claims {sorted(c for c in claims if c)}")
        check("--auto-resume" in line and "--resume" not in line.replace("--auto-resume", ""),
              f"{where}: resumes with --auto-resume", f"command: {line}")


# ---------------------------------------------------------------- systemd

def seconds(span):
    """A systemd time span ('15min', '1h 30s', '600', 'infinity') in seconds; None for infinity."""
    span = span.strip()
    if span in ("infinity", ""):
        return None
    units = {"us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60,
             "minute": 60, "minutes": 60, "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600, "d": 86400,
             "day": 86400, "days": 86400}
    total = 0.0
    for number, unit in re.findall(r"([0-9.]+)\s*([a-z]*)", span):
        total += float(number) * units.get(unit or "s", 1)
    return total


def unit_settings(path):
    settings = {}
    with open(path) as f:
        text = f.read().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def systemd(units_dir, sysusers_root):
    users, groups = set(), set()
    for db, names in (("passwd", users), ("group", groups)):
        p = os.path.join(sysusers_root, "etc", db)
        if os.path.exists(p):
            with open(p) as f:
                names.update(line.split(":", 1)[0] for line in f if ":" in line)
    for name in sorted(os.listdir(units_dir)):
        if not name.endswith(".service"):
            continue
        s = unit_settings(os.path.join(units_dir, name))
        last = lambda k, d=None: (s.get(k) or [d])[-1]
        restart = last("Restart", "no")
        if restart != "no":
            interval = seconds(last("StartLimitIntervalSec", "10s"))
            burst = int(last("StartLimitBurst", "5"))
            # a start that fails takes RestartSec plus, for a worker, the time it waits for a coordinator
            exec_start = " ".join(s.get("ExecStart") or [])
            m = re.search(r"--connect-timeout\s+([0-9.]+)", exec_start)
            cycle = seconds(last("RestartSec", "100ms")) + (float(m.group(1)) if m else 0)
            ok = interval is not None and interval > 0 and burst >= 1 and burst * cycle < interval
            check(ok, f"{name}: Restart={restart} is bounded (StartLimitBurst={burst} starts in "
                      f"StartLimitIntervalSec={last('StartLimitIntervalSec', '10s')}, a failing start every {cycle:g} s)",
                  "StartLimitIntervalSec=0 or infinity turns the limit off" if not interval
                  else f"{burst} starts {cycle:g} s apart never fit in {interval:g} s: it restarts forever")
        if last("DynamicUser", "no") in ("yes", "true", "1", "on"):
            check(True, f"{name}: DynamicUser=yes")
            continue
        user, group = last("User"), last("Group")
        if user is not None:
            check(user in users, f"{name}: User={user} is created by a sysusers.d file beside it",
                  "nothing creates it (add a *.sysusers file, or DynamicUser=yes)")
        if group is not None:
            check(group in groups, f"{name}: Group={group} is created by a sysusers.d file beside it",
                  "nothing creates it (add a *.sysusers file, or DynamicUser=yes)")


# ---------------------------------------------------------------- Slurm

def slurm(script, keygen_dir):
    with open(script) as f:
        text = f.read()
    shape = re.findall(r"^#SBATCH\s+(--(?:nodes|ntasks|ntasks-per-node|ntasks-per-socket|ntasks-per-core)\b\S*|-[nN]\s*\S+)",
                       text, re.M)
    check(not shape, f"{os.path.basename(script)}: sets no job shape (the command line's --nodes/--ntasks-per-node win)",
          "it sets " + " ".join(shape))
    written = set()
    for base, _, files in os.walk(keygen_dir):
        written.update(os.path.relpath(os.path.join(base, f), keygen_dir) for f in files)
    named = set(re.findall(r"\b[a-z][a-z0-9-]*\.(?:pub|key|key_secret)\b", text))
    missing = sorted(n for n in named if n not in written)
    check(named and not missing, f"{os.path.basename(script)}: the key files it names are those `ztrain keygen` writes",
          f"keygen never writes {', '.join(missing)}" if missing else "it names none")


if __name__ == "__main__":
    what, args = sys.argv[1], sys.argv[2:]
    if what == "kubernetes":
        kubernetes(args[0], args[1], args[2], int(args[3]))
    elif what == "systemd":
        systemd(args[0], args[1])
    elif what == "slurm":
        slurm(args[0], args[1])
    else:
        sys.exit(f"unknown check {what}")
    sys.exit(1 if failures else 0)
