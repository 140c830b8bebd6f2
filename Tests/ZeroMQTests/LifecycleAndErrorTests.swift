import Foundation
import Testing
import ZeroMQ

@Suite("Errors and lifecycle")
struct LifecycleAndErrorTests {
    @Test("errors carry the endpoint, errno and zmq_strerror text")
    func errorDescriptions() throws {
        let context = try makeContext()
        let socket = try context.socket(.router)
        let endpoint = "tcp://127.0.0.1:notaport"
        let error = try #require(#expect(throws: ZMQError.self) { try socket.bind(endpoint) })
        #expect(error.kind == .invalidArgument)
        #expect(error.errno == EINVAL)
        #expect(!error.message.isEmpty)
        #expect(error.message == String(cString: strerror(EINVAL)))
        #expect(error.operation == "bind(\(endpoint))")
        #expect(error.description == "bind(\(endpoint)): \(error.message)")

        let transportError = try #require(#expect(throws: ZMQError.self) { try socket.connect("bogus://x") })
        #expect(transportError.kind == .notSupported)
        #expect(transportError.description.contains("connect(bogus://x)"))
    }

    @Test("binding an address twice gives addressInUse")
    func addressInUse() throws {
        let context = try makeContext()
        let first = try context.socket(.pull)
        try first.bind("tcp://127.0.0.1:*")
        let endpoint = try first.lastEndpoint
        let second = try context.socket(.pull)
        let error = #expect(throws: ZMQError.self) { try second.bind(endpoint) }
        #expect(error?.kind == .addressInUse)
        #expect(error?.description.contains(endpoint) == true)
    }

    @Test("REQ sending twice is invalidState (EFSM)")
    func reqStateMachine() throws {
        let context = try makeContext()
        let rep = try context.socket(.rep)
        let req = try context.socket(.req)
        let endpoint = uniqueInproc()
        try rep.bind(endpoint)
        try req.connect(endpoint)
        try req.send("one")
        let error = #expect(throws: ZMQError.self) { try req.send("two") }
        #expect(error?.kind == .invalidState)
        #expect(try rep.receiveString(timeout: .seconds(10)) == "one")
        try rep.send("answer")
        #expect(try req.receiveString(timeout: .seconds(10)) == "answer")
    }

    @Test("closing twice is harmless; a closed socket reports socketClosed")
    func closeTwice() throws {
        let context = try makeContext()
        let socket = try context.socket(.dealer)
        try socket.bind(uniqueInproc())
        #expect(!socket.isClosed)
        socket.close()
        socket.close()
        #expect(socket.isClosed)
        let error = #expect(throws: ZMQError.self) { try socket.send("x") }
        #expect(error?.kind == .socketClosed)
        #expect(throws: ZMQError.self) { _ = try socket.lastEndpoint }
        #expect(throws: ZMQError.self) { _ = try socket.receive(timeout: .zero) }
        let poller = Poller()
        poller.register(socket)
        #expect(throws: ZMQError.self) { _ = try poller.poll(timeout: .zero) }
        try context.terminate()
    }

    @Test("releasing a socket closes it: its endpoint can be bound again")
    func deinitCloses() throws {
        let context = try makeContext()
        let endpoint = uniqueInproc()
        do {
            let socket = try context.socket(.pull)
            try socket.bind(endpoint)
            let clash = try context.socket(.pull)
            #expect(throws: ZMQError.self) { try clash.bind(endpoint) }
        }
        // Both sockets are gone; the name is released (asynchronously, so retry briefly).
        let again = try context.socket(.pull)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        var bound = false
        while !bound && clock.now < deadline {
            do {
                try again.bind(endpoint)
                bound = true
            } catch {
                #expect(error.kind == .addressInUse)
                Thread.sleep(forTimeInterval: 0.01)
            }
        }
        #expect(bound)
    }

    @Test("Context.shutdown unblocks a receive blocked in another thread")
    func shutdownUnblocksReceive() throws {
        let context = try Context()  // default (blocky) context
        let socket = try context.socket(.pull)
        try socket.setLinger(.zero)
        try socket.bind(uniqueInproc())

        let outcome = Locked<ZMQError.Kind?>(nil)
        let blocked = Locked(false)
        let started = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            blocked.value = true
            started.signal()
            do throws(ZMQError) {
                _ = try socket.receive()  // blocks: nobody sends
            } catch {
                outcome.value = error.kind
            }
            socket.close()
            done.signal()
        }
        thread.start()
        #expect(started.wait(timeout: .now() + 10) == .success)
        Thread.sleep(forTimeInterval: 0.05)  // most likely inside zmq_msg_recv by now
        context.shutdown()
        context.shutdown()  // idempotent
        #expect(context.isShutDown)
        let finished = done.wait(timeout: .now() + 10) == .success
        #expect(finished, "the blocked receive did not return after shutdown()")
        #expect(outcome.value == .contextTerminated)
        if finished {
            // All sockets are closed, so termination returns.
            #expect(finishes(within: 10) { try? context.terminate() })
            let error = #expect(throws: ZMQError.self) { _ = try context.socket(.pair) }
            #expect(error?.kind == .contextTerminated)
            try context.terminate()  // idempotent
        }
    }

    @Test("with linger 0, undelivered messages do not keep terminate() waiting")
    func terminateWithPendingMessages() throws {
        try withTemporaryDirectory { directory in
            let context = try Context()  // default linger is infinite ...
            let push = try context.socket(.push)
            try push.setLinger(.zero)   // ... so opt out for this socket
            try push.connect("ipc://\(directory)/nobody-listens.sock")
            try push.send("never delivered", flags: .dontWait)
            push.close()
            #expect(finishes(within: 10) { try? context.terminate() })
        }
    }

    @Test("a non-blocky context gives new sockets linger 0; ioThreads is applied")
    func contextOptions() throws {
        let context = try Context(ioThreads: 2, blocky: false)
        #expect(context.ioThreads == 2)
        let socket = try context.socket(.dealer)
        #expect(try socket.linger == .zero)
        #expect(socket.type == .dealer)
        let blocky = try Context()
        #expect(try blocky.socket(.dealer).linger == nil)
    }
}
