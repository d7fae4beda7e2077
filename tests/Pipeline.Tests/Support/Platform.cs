// The tests start Debian's RabbitMQ and check Unix file modes: they run on Linux.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace Pipeline.Tests.Support
{
    public static class Platform
    {
        /// <summary>The full path of a program on the PATH, or null.</summary>
        public static string? Which(string program) =>
            (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
                .Select(folder => Path.Combine(folder, program))
                .FirstOrDefault(File.Exists);

        /// <summary>The repository's top folder: the first above the test binaries that holds Pipeline.sln (found as the fault harness finds it).</summary>
        public static string RepositoryRoot => Pipeline.Faults.ProcessPipeline.RepositoryRoot;
    }
}
