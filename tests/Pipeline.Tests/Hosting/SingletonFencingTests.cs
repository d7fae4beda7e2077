using System.Collections.Concurrent;
using System.Diagnostics;
using Pipeline.Faults;
using Pipeline.Production.State;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Hosting;

/// <summary>
/// Two processes share a singleton's lease over one store; the holder is paused (SIGSTOP) past its lease, the other
/// takes the work over, and the paused one is let go on (SIGCONT) in the middle of its work: the store refuses its late
/// write, which carries the old term's fence, and it stops.
/// </summary>
public sealed class When_a_singletons_holder_is_paused_past_its_lease : IDisposable
{
    private readonly TempDirectory _folder = new();

    [Fact]
    public async Task Should_refuse_its_late_writes_once_another_process_took_the_work_over()
    {
        var (a, b, database) = await PausedWhileAnotherTakesOverAsync();
        using var holder = a;
        using var successor = b;
        await b.WaitForAsync(line => line.StartsWith("wrote 2 ", StringComparison.Ordinal), "b writing under token 2");
        await Signal("CONT", a.Id);
        var refused = await a.WaitForAsync(line => line.StartsWith("refused 1 ", StringComparison.Ordinal), "a's late write refused");
        await a.WaitForAsync(line => line == "lost 1", "a stopping its work");

        // Once refused, a wrote nothing more under its old token; b kept writing under its own.
        var afterRefusal = a.Lines.SkipWhile(line => line != refused).ToList();
        Assert.DoesNotContain(afterRefusal, line => line.StartsWith("wrote 1 ", StringComparison.Ordinal));
        Assert.DoesNotContain(a.Lines, line => line.StartsWith("took 2", StringComparison.Ordinal));
        await b.WaitForAsync(line => line.StartsWith("wrote 2 ", StringComparison.Ordinal) && b.Lines.Count(l => l.StartsWith("wrote 2 ", StringComparison.Ordinal)) >= 5, "b going on");
        // The store says the same: the refused release changed nothing, its reservation is still held; every accepted one is gone.
        using var store = StoreBackend.Sqlite(database);
        var held = (await store.Flow.ListReservationsAsync(SingletonProbe.Name, DateTimeOffset.UtcNow.AddMinutes(1), 10_000, CancellationToken.None)).Select(r => r.Name).ToList();
        Assert.Contains(refused.Split(' ')[2], held);
        Assert.All(a.Lines.Concat(b.Lines).Where(line => line.StartsWith("wrote ", StringComparison.Ordinal)), line => Assert.DoesNotContain(line.Split(' ')[2], held));
    }

    /// <summary>
    /// Starts a, which takes the lease, and b, which waits; pauses a, and returns once b has taken the work over. In SQLite
    /// a process paused in the middle of a commit keeps the database's write lock, and every other process waits for it:
    /// b cannot take over then. Such a try is given up (both processes stopped) and made again on a database of its own,
    /// until a's pause falls outside a commit.
    /// </summary>
    private async Task<(Probe A, Probe B, string Database)> PausedWhileAnotherTakesOverAsync()
    {
        for (var attempt = 1; ; attempt++)
        {
            var database = Path.Combine(_folder.Path, $"pipeline-{attempt}.db");
            var a = Probe.Start(database, "a");
            Probe? b = null;
            try
            {
                await a.WaitForAsync(line => line.StartsWith("wrote 1 ", StringComparison.Ordinal), "a writing under token 1");
                b = Probe.Start(database, "b");
                await Signal("STOP", a.Id);
                // The lease (2 s) runs out, and b asks every 0.2 s.
                await b.WaitForAsync(line => line == "took 2", "b taking the work over while a is paused", TimeSpan.FromSeconds(8));
                return (a, b, database);
            }
            catch (TimeoutException) when (attempt < 10)
            {
                a.Dispose();
                b?.Dispose();
            }
        }
    }

    private static async Task Signal(string signal, int process) =>
        Assert.Equal(0, (await Tool.RunAsync("kill", [$"-{signal}", process.ToString(System.Globalization.CultureInfo.InvariantCulture)])).ExitCode);

    public void Dispose() => _folder.Dispose();

    /// <summary>A singleton probe process (<see cref="SingletonProbe"/>) and the lines it printed.</summary>
    private sealed class Probe : IDisposable
    {
        private readonly Process _process;
        private readonly ConcurrentQueue<string> _lines = new();
        private readonly ConcurrentQueue<string> _errors = new();

        private Probe(Process process)
        {
            _process = process;
            process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is { } line)
                {
                    _lines.Enqueue(line);
                }
            };
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is { } line)
                {
                    _errors.Enqueue(line);
                }
            };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        public int Id => _process.Id;

        public IReadOnlyList<string> Lines => [.. _lines];

        /// <summary>A probe on a two-second lease: it stops counting itself the holder 1.6 s after its last renewal.</summary>
        public static Probe Start(string database, string instance) =>
            new(Process.Start(Tool.StartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "Pipeline.Faults.dll"), "singleton-probe", database, instance, "2"]))!);

        public Task<string> WaitForAsync(Func<string, bool> wanted, string what, TimeSpan? limit = null) =>
            Eventually.Until(() => Task.FromResult(Lines.FirstOrDefault(wanted)), line => line is not null, limit ?? TimeSpan.FromSeconds(60), what,
                _ => $"{string.Join(" | ", Lines.TakeLast(10))}; exited: {_process.HasExited}; stderr: {string.Join(" | ", _errors.TakeLast(10))}")!;

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(10_000);
            }
            _process.Dispose();
        }
    }
}
