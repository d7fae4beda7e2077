using System.Diagnostics;
using System.Text;
using Pipeline.Production.Campaigns;

namespace Pipeline.Reconstruction;

/// <summary>
/// One run of a release: the executable, its final argument list, where it runs and logs, the file attempt it is, and
/// what its campaign asks of a batch farm (ignored by a local run). <see cref="Wrapped"/> is set for an executor that
/// <see cref="IReleaseRunner.MovesJobBytes"/>: what the job wrapper runs on the compute node; <see cref="ReportName"/> is where
/// the wrapper leaves its report in the unmerged area.
/// </summary>
public sealed record ReleaseJob(string Executable, IReadOnlyList<string> Arguments, string WorkingDirectory, string LogPath, TimeSpan Timeout,
    Guid FileId = default, int Attempt = 0, string Campaign = "", BatchResources? Resources = null, Batch.JobSpec? Wrapped = null, string? ReportName = null);

/// <summary>
/// How a run ended. <see cref="ExitCode"/> is null when the process was killed. A batch job adds its id, its end state,
/// Slurm's reason and node; <see cref="SiteFailure"/> says the site failed it (a node, a preemption), not the release.
/// A wrapped job adds the <see cref="Report"/> it left in storage.
/// </summary>
public sealed record ReleaseOutcome(int? ExitCode, bool TimedOut, string LogTail, string? FirstErrorLine,
    long? BatchJobId = null, string? BatchState = null, string? BatchReason = null, string? BatchNode = null, bool SiteFailure = false,
    Batch.JobReport? Report = null);

/// <summary>Runs a release job. The process implementation is the real one; tests may wrap it.</summary>
public interface IReleaseRunner
{
    Task<ReleaseOutcome> RunAsync(ReleaseJob job, CancellationToken cancellationToken);

    /// <summary>Whether a job goes on when its worker stops (a batch job does; a child process does not).</summary>
    bool JobsOutliveWorker => false;

    /// <summary>
    /// Whether the job itself fetches its input and copies its outputs and logs through storage, where it runs (a batch
    /// job on a compute node), rather than the worker on its own host.
    /// </summary>
    bool MovesJobBytes => false;

    /// <summary>Follows a batch job submitted earlier (by this worker before a restart, or another) to its end.</summary>
    Task<ReleaseOutcome> FollowAsync(ReleaseJob job, long batchJobId, CancellationToken cancellationToken) =>
        throw new NotSupportedException("This executor runs no batch jobs to follow.");

    /// <summary>The batch job running a file's attempt, as the orchestrator records it (e.g. slurm:1234), or null.</summary>
    string? BatchJobOf(Guid fileId, int attempt) => null;

    /// <summary>How the orchestrator records a batch job of this executor.</summary>
    string? BatchJobName(long batchJobId) => null;
}

/// <summary>
/// Starts the release as a child process with an argument list (never through a shell), streams its
/// output into the job log, and kills the whole process tree on timeout or cancellation.
/// </summary>
public sealed class ProcessReleaseRunner : IReleaseRunner
{
    private const int TailLines = 20;

    public async Task<ReleaseOutcome> RunAsync(ReleaseJob job, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(job.Executable)
        {
            WorkingDirectory = job.WorkingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in job.Arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var tail = new Queue<string>();
        string? firstError = null;
        var gate = new Lock();
        await using var log = new StreamWriter(job.LogPath, append: true, Encoding.UTF8) { AutoFlush = true };
        void Line(string? line, bool isError)
        {
            if (line is null)
            {
                return;
            }
            lock (gate)
            {
                log.WriteLine(line);
                tail.Enqueue(line);
                if (tail.Count > TailLines)
                {
                    tail.Dequeue();
                }
                if (firstError is null && (isError || line.Contains("error", StringComparison.OrdinalIgnoreCase)) && line.Length > 0)
                {
                    firstError = line;
                }
            }
        }

        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Line(e.Data, isError: false);
        process.ErrorDataReceived += (_, e) => Line(e.Data, isError: true);
        try
        {
            process.Start();
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            Line($"cannot start {job.Executable}: {ex.Message}", isError: true);
            return new ReleaseOutcome(null, false, string.Join('\n', tail), firstError);
        }
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(job.Timeout);
        var timedOut = false;
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            timedOut = !cancellationToken.IsCancellationRequested;
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            Line(timedOut ? $"killed: no exit within {job.Timeout}" : "killed: job cancelled", isError: true);
        }
        // WaitForExit without a timeout also drains the redirected output.
        process.WaitForExit();
        cancellationToken.ThrowIfCancellationRequested();
        lock (gate)
        {
            return new ReleaseOutcome(timedOut ? null : process.ExitCode, timedOut, string.Join('\n', tail), firstError);
        }
    }
}
