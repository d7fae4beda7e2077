namespace Pipeline.Contracts;

/// <summary>Every per-file message names the file's saga and where the file belongs.</summary>
public interface IFileMessage
{
    Guid FileId { get; }
    int Run { get; }
    string Stream { get; }
    string Campaign { get; }
}

/// <summary>A per-file message about one attempt of the file's processing: traces and logs name the attempt.</summary>
public interface IFileAttemptMessage : IFileMessage
{
    int Attempt { get; }
}
