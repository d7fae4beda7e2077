using System.CommandLine;
using Pipeline.Cli.Commands;

namespace Pipeline.Cli;

/// <summary>The `pipeline` command: its global options, its commands, and how failures become exit codes.</summary>
public static class PipelineCommandLine
{
    public static readonly Option<string?> Url = new("--url")
    {
        Description = "The admin API's address (else PIPELINE_URL, the config file, http://127.0.0.1:8080)",
        Recursive = true,
    };

    public static readonly Option<string?> ApiKeyFile = new("--api-key-file")
    {
        Description = "A file holding the API key, or an api-keys.json (its operator key is taken); else PIPELINE_API_KEY, PIPELINE_API_KEY_FILE, the config file",
        Recursive = true,
    };

    public static readonly Option<string?> Config = new("--config")
    {
        Description = "A JSON config file {\"url\", \"apiKeyFile\" or \"apiKey\"} (else PIPELINE_CONFIG, ~/.config/pipeline/config.json)",
        Recursive = true,
    };

    public static readonly Option<bool> Json = new("--json")
    {
        Description = "Print the API's JSON instead of tables, for scripts",
        Recursive = true,
    };

    public static RootCommand Build()
    {
        var root = new RootCommand("Pipeline's command line: production status, files, failures, retries, campaigns and controls, through the admin API.\n"
            + "Exit codes: 0 ok, 1 not found or a failed check, 2 usage, 3 unauthorised.")
        {
            Url, ApiKeyFile, Config, Json,
        };
        foreach (var command in StatusCommands.Build().Concat(FileCommands.Build()).Concat(CampaignCommands.Build()).Concat(CheckCommands.Build()))
        {
            root.Add(command);
        }
        return root;
    }

    public static async Task<int> RunAsync(string[] args)
    {
        var parsed = Build().Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var error in parsed.Errors)
            {
                await Console.Error.WriteLineAsync(error.Message);
            }
            await Console.Error.WriteLineAsync("See `pipeline --help`.");
            return ExitCodes.Usage;
        }
        return await parsed.InvokeAsync();
    }

    /// <summary>
    /// Sets a command's action: the connection resolved, the work run, and every failure said as one sentence on
    /// stderr with the exit code it means. Never a stack trace: the operator cannot act on one.
    /// </summary>
    public static void Runs(this Command command, Func<Invocation, ParseResult, CancellationToken, Task<int>> action) =>
        command.SetAction(async (parsed, ct) =>
        {
            var errors = Invocation.ConsoleFor(Console.Error, Console.IsErrorRedirected);
            try
            {
                var settings = ConnectionSettings.Resolve(parsed.GetValue(Url), parsed.GetValue(ApiKeyFile), parsed.GetValue(Config),
                    Environment.GetEnvironmentVariable, Console.Error);
                var invocation = new Invocation(AdminApi.Create(settings), parsed.GetValue(Json), Invocation.ConsoleFor(Console.Out, Console.IsOutputRedirected), errors);
                return await action(invocation, parsed, ct);
            }
            catch (UsageException usage)
            {
                await Console.Error.WriteLineAsync(usage.Message);
                return ExitCodes.Usage;
            }
            catch (CommandFailedException failed)
            {
                await Console.Error.WriteLineAsync(failed.Message);
                return failed.Unauthorised ? ExitCodes.Unauthorised : ExitCodes.Failed;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                await Console.Error.WriteLineAsync("Stopped.");
                return ExitCodes.Failed;
            }
        });
}
