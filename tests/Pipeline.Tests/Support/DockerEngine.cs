using System.Diagnostics;

namespace Pipeline.Tests.Support;

/// <summary>Whether Testcontainers can start containers here: a Docker engine that answers, not only its client.</summary>
public static class DockerEngine
{
    private static readonly Lazy<bool> Answers = new(Probe);

    public static bool Runs() => Answers.Value;

    private static bool Probe()
    {
        if (!File.Exists("/var/run/docker.sock") && Environment.GetEnvironmentVariable("DOCKER_HOST") is null)
        {
            return false;
        }
        try
        {
            using var docker = Process.Start(new ProcessStartInfo("docker", ["info"]) { RedirectStandardOutput = true, RedirectStandardError = true });
            return docker is not null && docker.WaitForExit(20_000) && docker.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}
