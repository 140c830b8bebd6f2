#!/usr/bin/env python3
"""Runs rendered Kubernetes manifests of ztrain as local processes: a stand-in for a kubelet, for tests.

  k8s-local.py RENDERED.yaml ZTRAIN_BINARY WORKDIR [--keys DIR] [--kill-coordinator-at-checkpoint]
               [--timeout SECONDS]

What it does with the manifests, and no more:
  - every Job runs its pod template: an Indexed Job `completions` pods at once with JOB_COMPLETION_INDEX
    set (a failed index is run again up to backoffLimitPerIndex times), any other Job one pod, restarted
    after a failure (restartPolicy OnFailure) up to backoffLimit times; every restart is a new pod, as
    when a node is lost, so only claims carry files from one to the next;
  - a container runs its command and args, with the environment of its configMapRef envFrom and env
    values, and `ztrain` on PATH;
  - volumes: a persistentVolumeClaim is a folder WORKDIR/claims/NAME shared by every pod and kept after
    them; a secret with items is a folder per pod holding those items with defaultMode; an emptyDir a
    folder per pod. Mount paths (and /tmp) in the command line are rewritten to those folders;
  - a Service is reached on loopback: an environment value naming a Service becomes 127.0.0.1, and the
    port, MASTER_PORT, is replaced by a free one (tests running in parallel must not meet), and
    METRICS_BIND (the coordinator's /metrics) by 127.0.0.1:0, a free port on loopback;
  - a pod's IP (an env valueFrom fieldRef status.podIP) is 127.0.0.1, and its PEER_PORT (the workers'
    peer endpoints, one port per pod IP in a cluster) a free port of its own.
With --keys DIR, the Secret's entries come from that folder (`ztrain keygen --out DIR`), as a user
puts real keys in secret.yaml. With --kill-coordinator-at-checkpoint, the coordinator's container is
killed (SIGKILL) once, as soon as a checkpoint is on its claim: OnFailure then restarts it.

Prints a JSON report on stdout; exits 0 when every Job completed. Every process it starts is ended
before it exits. Needs PyYAML.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import yaml


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    # stopped by a signal: still end every process started (the `finally` below)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda n, _: sys.exit(128 + n))
    args = sys.argv[1:]
    rendered, binary, work = args[0], os.path.abspath(args[1]), os.path.abspath(args[2])
    keys = args[args.index("--keys") + 1] if "--keys" in args else None
    kill_at_checkpoint = "--kill-coordinator-at-checkpoint" in args
    timeout = float(args[args.index("--timeout") + 1]) if "--timeout" in args else 240

    with open(rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = lambda kind: [d for d in docs if d.get("kind") == kind]
    configmaps = {d["metadata"]["name"]: dict(d.get("data") or {}) for d in by_kind("ConfigMap")}
    secrets = {}
    for d in by_kind("Secret"):
        data = dict(d.get("stringData") or {})
        if keys:
            data = {k: open(os.path.join(keys, k)).read() for k in data}
        secrets[d["metadata"]["name"]] = data
    services = {d["metadata"]["name"] for d in by_kind("Service")}
    port = str(free_port())
    os.makedirs(os.path.join(work, "bin"), exist_ok=True)
    link = os.path.join(work, "bin", "ztrain")
    if not os.path.lexists(link):
        os.symlink(binary, link)

    pods = []  # dicts: job, index, proc, attempt

    def start_pod(job, index, attempt):
        name = job["metadata"]["name"] + ("" if index is None else f"-{index}") + f"-{attempt}"
        spec = job["spec"]["template"]["spec"]
        root = os.path.join(work, "pods", name)
        mounts = {"/tmp": os.path.join(root, "tmp")}
        os.makedirs(mounts["/tmp"], exist_ok=True)
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        container = spec["containers"][0]
        for m in container.get("volumeMounts") or []:
            v = volumes[m["name"]]
            if "persistentVolumeClaim" in v:
                path = os.path.join(work, "claims", v["persistentVolumeClaim"]["claimName"])
            elif "secret" in v:
                path = os.path.join(root, "volumes", m["name"])
                data = secrets[v["secret"]["secretName"]]
                for item in v["secret"].get("items") or [{"key": k, "path": k} for k in data]:
                    p = os.path.join(path, item["path"])
                    os.makedirs(os.path.dirname(p), exist_ok=True)
                    with open(p, "w") as f:
                        f.write(data[item["key"]])
                    os.chmod(p, v["secret"].get("defaultMode", 0o644))
            else:
                path = os.path.join(root, "volumes", m["name"])
            os.makedirs(path, exist_ok=True)
            mounts[m["mountPath"]] = path
        env = {"PATH": os.path.join(work, "bin") + ":" + os.environ.get("PATH", "/usr/bin:/bin")}
        for source in container.get("envFrom") or []:
            env.update(configmaps[source["configMapRef"]["name"]])
        for e in container.get("env") or []:
            field = ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            env[e["name"]] = "127.0.0.1" if field == "status.podIP" else str(e.get("value", ""))
        env = {k: ("127.0.0.1" if v in services else v) for k, v in env.items()}
        if "MASTER_PORT" in env:
            env["MASTER_PORT"] = port
        if "METRICS_BIND" in env:
            env["METRICS_BIND"] = "127.0.0.1:0"
        if "PEER_PORT" in env:
            env["PEER_PORT"] = str(free_port())
        if index is not None:
            env["JOB_COMPLETION_INDEX"] = str(index)

        # one pass, longest mount path first; a path starts a word and ends one or goes on with '/'
        pattern = re.compile(r"(?<![^\s\"'=])(" + "|".join(re.escape(m) for m in sorted(mounts, key=len, reverse=True))
                             + r")(?=/|\s|$|\"|')")

        def rewrite(s):
            return pattern.sub(lambda m: mounts[m.group(1)], s)
        argv = [rewrite(str(a)) for a in (container.get("command") or ["ztrain"]) + (container.get("args") or [])]
        log = open(os.path.join(work, f"{name}.log"), "w")
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        pods.append({"job": job, "index": index, "attempt": attempt, "proc": proc, "name": name})

    jobs = by_kind("Job")
    for job in jobs:
        spec = job["spec"]
        if spec.get("completionMode") == "Indexed":
            for i in range(int(spec["completions"])):
                start_pod(job, i, 0)
        else:
            start_pod(job, None, 0)

    coordinator = next(j for j in jobs if j["spec"].get("completionMode") != "Indexed")
    claim_checkpoints = [os.path.join(work, "claims", v["persistentVolumeClaim"]["claimName"])
                         for v in coordinator["spec"]["template"]["spec"].get("volumes") or []
                         if "persistentVolumeClaim" in v]
    killed = False
    report = {"jobs": {}, "killed_coordinator": False, "port": int(port)}
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            running = [p for p in pods if p.get("status") is None]
            for p in running:
                status = p["proc"].poll()
                if status is None:
                    continue
                p["status"] = status
                job = p["job"]
                spec, tmpl = job["spec"], job["spec"]["template"]["spec"]
                if status != 0:
                    if spec.get("completionMode") == "Indexed":
                        if p["attempt"] < int(spec.get("backoffLimitPerIndex", 0)):
                            start_pod(job, p["index"], p["attempt"] + 1)
                    elif tmpl.get("restartPolicy") == "OnFailure" and p["attempt"] < int(spec.get("backoffLimit", 6)):
                        start_pod(job, None, p["attempt"] + 1)
            if kill_at_checkpoint and not killed:
                for root in claim_checkpoints:
                    for base, _, files in os.walk(root):
                        if os.path.basename(base) == "checkpoints" and any(f.endswith(".safetensors") for f in files):
                            for p in pods:
                                if p["job"] is coordinator and p.get("status") is None:
                                    os.killpg(p["proc"].pid, signal.SIGKILL)
                                    killed = True
            if all(p.get("status") is not None for p in pods):
                break
            time.sleep(0.1)
    finally:
        for p in pods:
            if p["proc"].poll() is None:
                try:
                    os.killpg(p["proc"].pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p["proc"].wait()
                p.setdefault("status", "killed at the timeout")

    complete = True
    for job in jobs:
        name = job["metadata"]["name"]
        mine = [p for p in pods if p["job"] is job]
        if job["spec"].get("completionMode") == "Indexed":
            indexes = {p["index"] for p in mine}
            done = {p["index"] for p in mine if p["status"] == 0}
            ok = done == set(range(int(job["spec"]["completions"])))
        else:
            ok = any(p["status"] == 0 for p in mine)
        complete = complete and ok
        report["jobs"][name] = {"complete": ok, "pods": [{"name": p["name"], "status": p["status"]} for p in mine]}
        if job["spec"].get("completionMode") == "Indexed":
            report["jobs"][name]["indexes"] = sorted(indexes)
    report["killed_coordinator"] = killed
    report["claims"] = sorted(os.listdir(os.path.join(work, "claims"))) if os.path.isdir(os.path.join(work, "claims")) else []
    print(json.dumps(report, indent=1))
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
