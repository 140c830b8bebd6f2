import Foundation
import Testing

/// What a new user trips over: overwritten runs, a flooding progress line, flags, outputs.
@Suite("ztrain for a new user")
struct NewUserCLITests {
    let quick = ["--epochs", "1", "--quiet"]

    // MARK: runs do not overwrite runs

    @Test("a run folder is refused as --out unless --overwrite, which leaves nothing of the old run")
    func outIsNotOverwritten() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let out = tmp.path("run")
        let first = try runZtrain(["train", "--out", out] + quick)
        #expect(first.status == 0, "\(first.stderr)")
        try Data("<svg/>".utf8).write(to: URL(fileURLWithPath: out + "/predictions.svg"))
        let again = try runZtrain(["train", "--out", out] + quick)
        #expect(again.status == 1 && again.stderr.hasPrefix("error: ") && again.stderr.contains("--overwrite"), "\(again.stderr)")
        #expect(FileManager.default.fileExists(atPath: out + "/predictions.svg"))
        let replaced = try runZtrain(["train", "--out", out, "--overwrite"] + quick)
        #expect(replaced.status == 0, "\(replaced.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out + "/predictions.svg"))
        #expect(FileManager.default.fileExists(atPath: out + "/model.safetensors"))
        let noOut = try runZtrain(["train", "--overwrite"] + quick, cwd: tmp.url)
        #expect(noOut.status == 64 && noOut.stderr.contains("--overwrite needs --out"), "\(noOut.stderr)")
    }

    @Test("runs started together with the default --out get folders of their own")
    func defaultFoldersAreUnique() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        final class Results: @unchecked Sendable {
            // @unchecked: `runs` is only touched under `lock`
            let lock = NSLock()
            var runs: [RunResult?] = [nil, nil, nil]
        }
        let box = Results()
        DispatchQueue.concurrentPerform(iterations: 3) { i in
            let r = try? runZtrain(["train"] + quick, cwd: tmp.url)
            box.lock.withLock { box.runs[i] = r }
        }
        let results = box.runs
        let paths = results.compactMap { $0 }.map { $0.stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(results.allSatisfy { $0?.status == 0 }, "\(results.map { $0?.stderr ?? "not run" })")
        #expect(Set(paths).count == 3, "\(paths)")
        let folders = try FileManager.default.contentsOfDirectory(atPath: tmp.path("runs"))
        #expect(folders.count == 3, "\(folders)")
    }

    @Test("--auto-resume starts over in its own folder when there is no checkpoint yet")
    func autoResumeReusesItsFolder() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let out = tmp.path("run")
        let port = String(Int.random(in: 30000...39999))
        let launch = ["launch", "--rank", "0", "--world-size", "1", "--port", port, "--out", out] + quick
        let first = try runZtrain(launch)
        #expect(first.status == 0, "\(first.stderr)")
        let restarted = try runZtrain(launch + ["--auto-resume"])
        #expect(restarted.status == 0, "\(restarted.stderr)")
        let plain = try runZtrain(launch)
        #expect(plain.status == 1 && plain.stderr.contains("already holds a run"), "\(plain.stderr)")
    }

    @Test("a private temp folder left by a killed launcher is removed at the next start; a live one's stays")
    func staleTempFolders() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let exited = try runCommand("/bin/sh", ["-c", "echo $$"])
        let dead = exited.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let stale = tmp.path("ztrain-\(dead)-1"), live = tmp.path("ztrain-\(getpid())-1")
        for d in [stale, live] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        let r = try runCommand(ztrainBinary().path, ["train", "--workers", "1", "--out", tmp.path("run")] + quick,
                               environment: ["TMPDIR": tmp.url.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: stale))
        #expect(FileManager.default.fileExists(atPath: live))
    }

    // MARK: the progress line

    @Test("through an 80-column pseudo-terminal no line is longer than 80 characters")
    func progressFitsTheTerminal() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let script = tmp.path("pty.py")
        try Data(ptyScript.utf8).write(to: URL(fileURLWithPath: script))
        let raw = tmp.path("terminal.bin")
        let r = try runCommand("/usr/bin/python3", [script, "80", "240", raw, ztrainBinary().path, "train", "--workers", "2",
                                                     "--epochs", "25", "--log-level", "warning", "--out", tmp.path("run")])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let text = String(decoding: try Data(contentsOf: URL(fileURLWithPath: raw)), as: UTF8.self)
            .replacingOccurrences(of: "\u{1B}[K", with: "")
        let lines = text.components(separatedBy: CharacterSet(charactersIn: "\r\n")).filter { !$0.isEmpty }
        let progress = lines.filter { $0.hasPrefix("epoch ") }
        #expect(progress.count >= 2, "\(lines)")
        for line in lines { #expect(line.count <= 80, "\(line.count) characters: \(line)") }
        #expect(progress.contains { $0.range(of: #"ETA \d+:\d\d:\d\d"#, options: .regularExpression) != nil }, "\(progress)")
        #expect(!text.contains("\u{1B}") , "escape sequences other than erase-line: \(text.debugDescription)")
    }

    // MARK: flags

    @Test("a negative number is a flag's value; --lr -1 is a range error, not a missing value")
    func negativeValues() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let r = try runZtrain(["train", "--range", "-10:10", "--out", tmp.path("r")] + quick)
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try String(contentsOfFile: tmp.path("r/summary.json"), encoding: .utf8)
        #expect(summary.contains("\"from\" : -10"), "\(summary)")
        for lr in [["--lr", "-1"], ["--lr=-1"]] {
            let e = try runZtrain(["train"] + lr + quick)
            #expect(e.status == 64 && e.stderr.contains("--lr must be a positive number (got -1.0)"), "\(e.stderr)")
            #expect(!e.stderr.contains("Missing value"), "\(e.stderr)")
        }
    }

    @Test("every error says 'error:'; a usage error found while running names that command's help, not the top level")
    func errorFormat() throws {
        let parse = try runZtrain(["train", "--no-such-flag"])
        #expect(parse.status == 64 && parse.stderr.hasPrefix("error: ") && !parse.stderr.contains("Error:"), "\(parse.stderr)")
        let late = try runZtrain(["train", "--val-fraction", "2", "--epochs", "1"])
        #expect(late.status == 64 && late.stderr.hasPrefix("error: ") && late.stderr.contains("--val-fraction"), "\(late.stderr)")
        #expect(late.stderr.contains("See 'ztrain train --help'") && !late.stderr.contains("SUBCOMMANDS"), "\(late.stderr)")
        let runtime = try runZtrain(["predict", "--model", "/nonexistent/model.safetensors"])
        #expect(runtime.status == 1 && runtime.stderr.hasPrefix("error: "), "\(runtime.stderr)")
    }

    @Test("misplaced or meaningless flags are refused")
    func refusedFlags() throws {
        let threads = try runZtrain(["stress", "--workers", "2", "--params", "10", "--rounds", "1", "--threads"])
        #expect(threads.status == 64 && threads.stderr.contains("--threads"), "\(threads.stderr)")
        let columns = try runZtrain(["train", "--columns", "zz"] + quick)
        #expect(columns.status == 64 && columns.stderr.contains("--columns"), "\(columns.stderr)")
        let points = try runZtrain(["train", "--points", "100000000"] + quick)
        #expect(points.status == 64 && points.stderr.contains("--points must be in 2...10000000"), "\(points.stderr)")
    }

    @Test("predict: --out must be .svg or .csv, --points is bounded and overrides the model's series")
    func predictFlags() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let model = tmp.path("run/model.safetensors")
        let t = try runZtrain(["train", "--out", tmp.path("run")] + quick)
        #expect(t.status == 0, "\(t.stderr)")
        let txt = try runZtrain(["predict", "--model", model, "--out", tmp.path("pred.txt")])
        #expect(txt.status == 64 && txt.stderr.contains("unknown extension"), "\(txt.stderr)")
        #expect(!FileManager.default.fileExists(atPath: tmp.path("pred.txt")))
        let big = try runZtrain(["predict", "--model", model, "--points", "100000000", "--out", tmp.path("p.svg")])
        #expect(big.status == 64 && big.stderr.contains("--points"), "\(big.stderr)")
        let fewer = try runZtrain(["predict", "--model", model, "--points", "200", "--out", tmp.path("p.svg")])
        #expect(fewer.status == 0, "\(fewer.stderr)")
        let svg = try String(contentsOfFile: tmp.path("p.svg"), encoding: .utf8)
        #expect(svg.contains("200 points"), "the title names the series predicted")
    }

    @Test("help, version and shell completion scripts go to stdout with status 0")
    func helpAndCompletion() throws {
        let r = try runZtrain(["--generate-completion-script", "bash"])
        #expect(r.status == 0 && r.stdout.contains("_ztrain"), "\(r.stderr)")
        let help = try runZtrain(["predict", "--help"])
        #expect(help.status == 0 && help.stdout.contains("USAGE: ztrain predict") && help.stderr.isEmpty, "\(help.stderr)")
        #expect(help.stdout.contains("predict: the model's"), "predict's help says where --data comes from")
        let version = try runZtrain(["--version"])
        #expect(version.status == 0 && version.stdout == "0.1.0\n")
    }

    // MARK: outputs

    @Test("summary.json says which ztrain ran, where, how and when; logs name their origin once; the plot names its settings")
    func outputs() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let out = tmp.path("run")
        let r = try runZtrain(["train", "--epochs", "1", "--target-loss", "1e-9", "--out", out])
        #expect(r.status == 0, "\(r.stderr)")
        let data = try Data(contentsOf: URL(fileURLWithPath: out + "/summary.json"))
        let text = String(decoding: data, as: UTF8.self)
        #expect(!text.contains("\\/"), "escaped slashes")
        let s = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(s["version"] as? String == "0.1.0")
        #expect((s["host"] as? String)?.isEmpty == false)
        #expect((s["command_line"] as? [String])?.contains("--target-loss") == true)
        for key in ["started_at", "finished_at"] {
            #expect((s[key] as? String)?.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"#, options: .regularExpression) != nil, "\(key)")
        }
        let metrics = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)
        #expect(metrics.contains("\"lr\":0.01") && metrics.contains("\"time\":\""), "\(metrics)")
        #expect(!r.stderr.contains("[ztrain]") && r.stderr.contains(" info ztrain.train: "), "\(r.stderr)")
        let svg = try String(contentsOfFile: out + "/loss.svg", encoding: .utf8)
        #expect(!svg.contains("sincos(points:") && svg.contains("random seed 0") && svg.contains("seed cell"))
        #expect(svg.contains("target 1e-09") && svg.contains("sincos, 1000 points, x from 0 to 100"))
    }
}

/// Runs a command in a pseudo-terminal of the given width and saves everything it printed.
/// Usage: pty.py COLUMNS TIMEOUT OUTFILE COMMAND...
private let ptyScript = """
import fcntl, os, signal, struct, subprocess, sys, termios, time
cols, timeout, outfile, cmd = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4:]
master, slave = os.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
env = dict(os.environ, TERM="xterm")
env.pop("COLUMNS", None)
p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
os.close(slave)
data = b""
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        chunk = os.read(master, 65536)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
if p.poll() is None:
    os.killpg(p.pid, signal.SIGKILL)
status = p.wait()
open(outfile, "wb").write(data)
sys.exit(status if status >= 0 else 128 - status)
"""
