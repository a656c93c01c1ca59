-- Commands the comment bot has taken, per comment: a redelivered event, or an edit that keeps
-- a command, never runs it twice. `comment` names the comment on its forge
-- (`<repository>#<comment id>`); `command` is the normalised command line.
CREATE TABLE bot_commands (
    forge    TEXT    NOT NULL,
    comment  TEXT    NOT NULL,
    command  TEXT    NOT NULL,
    taken_at INTEGER NOT NULL,
    PRIMARY KEY (forge, comment, command)
) WITHOUT ROWID;
CREATE INDEX bot_commands_taken_at ON bot_commands (taken_at);
