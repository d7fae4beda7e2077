using Pipeline.Cli;

// pipeline COMMAND [options]: the operators' command line, a client of the admin API (`pipeline --help`).
return await PipelineCommandLine.RunAsync(args);
