package io.understudy.aeron;

import io.aeron.Aeron;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import org.agrona.ErrorHandler;
import org.agrona.IoUtil;
import org.agrona.concurrent.Agent;
import org.agrona.concurrent.AgentRunner;
import org.agrona.concurrent.DynamicCompositeAgent;
import org.agrona.concurrent.SleepingIdleStrategy;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;

/**
 * The Aeron media a link runs on: either an embedded media driver owned by this object (its directory under
 * /dev/shm, or the temp dir, deleted on start and on close), or an external driver reached through its directory
 * ({@code --aeron-dir}). Either way it owns one Aeron client, which every publication and subscription of the links
 * share.
 * <p>
 * <b>One duty thread.</b> The embedded driver runs in INVOKER mode: its sender, receiver and conductor, and the
 * client's conductor, are invoked by this object's single agent thread ({@code aeron-duty}), which also runs the
 * links' agents ({@link #attach}). A forwarded write used to pass through the driver's thread and then the link's
 * on each host, each hand-off waiting for a parked thread to wake; now one thread receives the datagram, applies or
 * completes the request, and sends the answer. On a 2-core host it also means two fewer polling threads per
 * sidecar. Waits that may run on that thread use {@link #awaitProgress}, which keeps the driver going meanwhile.
 * Its idle strategy ({@link RecentWorkIdleStrategy}) parks briefly while messages flow and up to 1 ms once idle.
 * <p>
 * Closing stops the duty thread, closes the client, then the embedded driver, which removes its directory; a JVM
 * that exits without closing removes it in a shutdown hook.
 */
public final class AeronMedia implements AutoCloseable
{
    private static final System.Logger LOG = System.getLogger("io.understudy.aeron");
    /**
     * Longest park of the idle duty thread. When the driver and the link had threads of their own, parks of at most
     * 100 us took half of a 2-core machine: 4 KiB reads served by the primary, which never touch Aeron, fell from
     * 38k to 19k IOPS next to an idle link; at 1 ms they came back to 31k.
     */
    private static final long IDLE_MAX_PARK_NANOS = TimeUnit.MILLISECONDS.toNanos(1);
    /** Longest park while messages flow: a round trip waits for about four wake-ups of parked duty threads. */
    private static final long HOT_MAX_PARK_NANOS = TimeUnit.MICROSECONDS.toNanos(50);
    /** How long after its last work the duty thread still counts as busy. */
    private static final long HOT_WINDOW_NANOS = TimeUnit.MILLISECONDS.toNanos(10);
    private static final String DUTY_THREAD = "aeron-duty";
    /** How long attaching or detaching an agent may wait for the duty cycle to take it. */
    private static final long AGENT_CHANGE_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(10);
    private static final long AGENT_CHANGE_PARK_NANOS = TimeUnit.MICROSECONDS.toNanos(100);
    /**
     * Sleep of the driver's async executor ({@code aeron-executor}) between polls of its task queue. It runs the
     * name resolution of network publications, subscriptions and destinations when they are added, and of
     * endpoints that went silent: nothing per message, so a registration may wait up to this long once. Aeron's
     * 1 ms default woke it a thousand times a second for nothing.
     */
    private static final long EXECUTOR_SLEEP_NANOS = TimeUnit.MILLISECONDS.toNanos(10);

    private final MediaDriver driver;
    private final Aeron aeron;
    private final String directory;
    /** Removes an embedded driver's directory if the process exits without closing this object. */
    private final Thread exitCleanup;
    private final DynamicCompositeAgent agents;
    private final AgentRunner duty;
    /** The duty thread's idle strategy, told by the links' agents when they handle messages. */
    private final RecentWorkIdleStrategy dutyIdle;
    /** The duty thread, once started: waits on it must keep the driver going ({@link #awaitProgress}). */
    private volatile Thread dutyThread;
    /** The embedded driver and the client's conductor, invoked by the duty thread; null with an external driver. */
    private final InvokedAeronAgent invokedAgent;
    private boolean dutyStarted;
    private boolean closed;

    private AeronMedia(final MediaDriver driver, final Aeron aeron, final String directory)
    {
        this.driver = driver;
        this.aeron = aeron;
        this.directory = directory;
        final boolean invoked = driver != null && driver.sharedAgentInvoker() != null;
        this.invokedAgent = invoked ? new InvokedAeronAgent(driver.sharedAgentInvoker(),
            aeron.conductorAgentInvoker(), aeron.context().clientLock()) : null;
        this.agents = invoked ? new DynamicCompositeAgent(DUTY_THREAD, invokedAgent) :
            new DynamicCompositeAgent(DUTY_THREAD);
        this.dutyIdle = idleStrategy(false);
        this.duty = new AgentRunner(dutyIdle, AeronMedia::onDutyError, null, agents);
        if (invoked)
        {
            startDuty();
        }
        if (driver != null)
        {
            exitCleanup = new Thread(() -> IoUtil.delete(new File(directory), true), "aeron-dir-cleanup");
            Runtime.getRuntime().addShutdownHook(exitCleanup);
        }
        else
        {
            exitCleanup = null;
        }
    }

    /** Starts an embedded driver with the defaults described above. */
    public static AeronMedia embedded()
    {
        return embedded(context -> { });
    }

    /**
     * Starts an embedded driver; {@code customiser} may change its context before launch (tests install loss
     * generators, shorten timeouts or shrink term buffers with it).
     */
    public static AeronMedia embedded(final Consumer<MediaDriver.Context> customiser)
    {
        return launch(defaultDirectory(), true, ThreadingMode.INVOKER, customiser);
    }

    /**
     * Starts a driver in {@code directory} for other processes to share (their {@code --aeron-dir}); Aeron refuses
     * a directory whose driver is still alive. Closing stops the driver and removes the directory.
     */
    public static AeronMedia standalone(final String directory)
    {
        return launch(directory, false, ThreadingMode.SHARED, context -> { });
    }

    private static AeronMedia launch(
        final String directory, final boolean deleteOnStart, final ThreadingMode threadingMode,
        final Consumer<MediaDriver.Context> customiser)
    {
        final MediaDriver.Context context = new MediaDriver.Context()
            .aeronDirectoryName(directory)
            .dirDeleteOnStart(deleteOnStart)
            .dirDeleteOnShutdown(true)
            .threadingMode(threadingMode)
            .sharedIdleStrategy(idleStrategy(true))
            .asyncExecutorIdleStrategy(new SleepingIdleStrategy(EXECUTOR_SLEEP_NANOS))
            .termBufferSparseFile(true)
            .warnIfDirectoryExists(false);
        SocketBuffers.apply(context);
        customiser.accept(context);
        final MediaDriver driver = MediaDriver.launchEmbedded(context);
        try
        {
            // An INVOKER driver: the client drives it itself while it waits for a registration's answer, and its
            // conductor is invoked too, both by the duty thread otherwise (InvokedAeronAgent).
            final boolean invoked = driver.sharedAgentInvoker() != null;
            final Aeron aeron = Aeron.connect(new Aeron.Context()
                .aeronDirectoryName(driver.aeronDirectoryName())
                .driverAgentInvoker(driver.sharedAgentInvoker())
                .useConductorAgentInvoker(invoked)
                .errorHandler(AeronMedia::onClientError));
            return new AeronMedia(driver, aeron, driver.aeronDirectoryName());
        }
        catch (final RuntimeException ex)
        {
            // As in close(): the driver removes its files, not always the directory itself.
            driver.close();
            IoUtil.delete(new File(driver.aeronDirectoryName()), true);
            throw ex;
        }
    }

    /** Connects to the external driver whose directory is {@code aeronDirectory}; the driver is not ours to stop. */
    public static AeronMedia external(final String aeronDirectory)
    {
        final Aeron aeron = Aeron.connect(new Aeron.Context()
            .aeronDirectoryName(aeronDirectory)
            .errorHandler(AeronMedia::onClientError));
        return new AeronMedia(null, aeron, aeronDirectory);
    }

    /**
     * @param anyWorkCounts true for a standalone driver's thread, which sees no link handle messages.
     * @return the idle strategy of the duty thread (and of a standalone driver's thread): short parks while messages
     *         flow, long ones once the link idles.
     */
    static RecentWorkIdleStrategy idleStrategy(final boolean anyWorkCounts)
    {
        return new RecentWorkIdleStrategy(10, 20, 1_000, HOT_MAX_PARK_NANOS, IDLE_MAX_PARK_NANOS,
            HOT_WINDOW_NANOS, anyWorkCounts);
    }

    public Aeron aeron()
    {
        return aeron;
    }

    /** @return the driver's directory. */
    public String directory()
    {
        return directory;
    }

    /** @return true if this object runs the driver (and removes its directory on close). */
    public boolean isEmbedded()
    {
        return driver != null;
    }

    /**
     * Runs {@code agent} in the duty cycle from its next turn on, until {@link #detach}; its exceptions go to
     * {@code errorHandler} and end neither the cycle nor the other agents.
     *
     * @return the handle to detach it with.
     * @throws IllegalStateException if the duty cycle did not take it within 10 s, or this media is closed.
     */
    public synchronized Agent attach(final Agent agent, final ErrorHandler errorHandler)
    {
        if (!dutyStarted && !closed)
        {
            startDuty();
        }
        final Agent isolated = new IsolatedAgent(agent, errorHandler, dutyIdle::messagesHandled);
        change(() -> agents.tryAdd(isolated), agents::hasAddAgentCompleted, "attach " + agent.roleName());
        return isolated;
    }

    /**
     * Removes an attached agent (its {@code onClose} runs on the duty thread) and returns once it will not run
     * again. Not from the duty thread itself: that would wait for its own next turn.
     */
    public synchronized void detach(final Agent attached)
    {
        if (closed)
        {
            return;
        }
        change(() -> agents.tryRemove(attached), agents::hasRemoveAgentCompleted, "detach " + attached.roleName());
    }

    /**
     * One step of a bounded wait for Aeron to make progress (a publication to connect, back-pressure to clear). On
     * the duty thread the driver cannot run while its caller waits, so this invokes it; elsewhere it parks.
     */
    public void awaitProgress(final long parkNanos)
    {
        if (invokedAgent != null && Thread.currentThread() == dutyThread)
        {
            if (invokedAgent.doWork() == 0)
            {
                Thread.yield();
            }
            return;
        }
        LockSupport.parkNanos(parkNanos);
    }

    /** An embedded driver needs the thread from the start; otherwise it starts with the first agent. */
    private void startDuty()
    {
        dutyStarted = true;
        AgentRunner.startOnThread(duty, runnable -> Thread.ofPlatform().daemon(true).name(DUTY_THREAD)
            .unstarted(() ->
            {
                dutyThread = Thread.currentThread();
                runnable.run();
            }));
    }

    private void change(final BooleanSupplier request, final BooleanSupplier completed, final String what)
    {
        if (closed)
        {
            throw new IllegalStateException("cannot " + what + ": the Aeron media is closed");
        }
        if (Thread.currentThread() == dutyThread)
        {
            throw new IllegalStateException("cannot " + what + " from the duty thread itself");
        }
        final long deadline = System.nanoTime() + AGENT_CHANGE_TIMEOUT_NANOS;
        // The composite takes changes only once its thread has started it.
        while (agents.status() == DynamicCompositeAgent.Status.INIT)
        {
            awaitChange(deadline, what);
        }
        while (!request.getAsBoolean())
        {
            awaitChange(deadline, what);
        }
        while (!completed.getAsBoolean())
        {
            awaitChange(deadline, what);
        }
    }

    private static void awaitChange(final long deadline, final String what)
    {
        if (System.nanoTime() - deadline >= 0)
        {
            throw new IllegalStateException("cannot " + what + ": the Aeron duty cycle did not take the change " +
                "within 10 s");
        }
        LockSupport.parkNanos(AGENT_CHANGE_PARK_NANOS);
    }

    /** Idempotent. */
    @Override
    public synchronized void close()
    {
        if (closed)
        {
            return;
        }
        closed = true;
        duty.close();
        aeron.close();
        if (driver != null)
        {
            driver.close();
            // dirDeleteOnShutdown removes the driver's files; make sure the directory itself is gone too.
            IoUtil.delete(new File(directory), true);
            try
            {
                Runtime.getRuntime().removeShutdownHook(exitCleanup);
            }
            catch (final IllegalStateException ex)
            {
                // The JVM is exiting: the hook runs anyway and finds nothing left to delete.
            }
        }
    }

    private static String defaultDirectory()
    {
        final Path shm = Path.of("/dev/shm");
        final Path parent = Files.isDirectory(shm) && Files.isWritable(shm) ? shm :
            Path.of(System.getProperty("java.io.tmpdir"));
        final String name = "understudy-aeron-" + ProcessHandle.current().pid() + "-" +
            Long.toHexString(ThreadLocalRandom.current().nextLong() & Long.MAX_VALUE);
        return parent.resolve(name).toString();
    }

    private static void onDutyError(final Throwable error)
    {
        LOG.log(System.Logger.Level.WARNING, "Aeron duty cycle: {0}", String.valueOf(error));
    }

    private static void onClientError(final Throwable error)
    {
        LOG.log(System.Logger.Level.WARNING, "Aeron client: {0}", String.valueOf(error));
    }
}
