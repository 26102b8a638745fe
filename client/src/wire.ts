// The JSON shapes of the chat contract, as the server's `wire` crate writes them. Each one
// is checked against the samples the Rust golden tests write into `client/wire/` (see
// `test/wire-check.ts`): a field renamed, added or dropped on the server fails
// `npm run check` until this file follows.

/** ISO 8601 with milliseconds and `Z`. */
export type Timestamp = string;

export type ErrorCode =
  | 'INVALID_INPUT'
  | 'NOT_PARTICIPANT'
  | 'NOT_FOUND'
  | 'UNAUTHORIZED'
  | 'RATE_LIMIT'
  | 'CONFLICT'
  | 'UNAVAILABLE'
  | 'INTERNAL'
  | 'JOIN_FAILED'
  | 'MISSING_TOKEN'
  | 'INVALID_TOKEN'
  | 'EXPIRED_TOKEN'
  | (string & {});

export interface ErrorBody {
  message: string;
  code: ErrorCode;
}

export interface UserRef {
  id: string;
  /** `null` once the user is erased. */
  name: string | null;
  avatarUrl?: string;
}

export interface NamedUser {
  id: string;
  name: string;
}

/** Content as a client sees it: `null` with `erased` or `expired` when it is gone. */
export interface Body {
  content: string | null;
  erased?: true;
  expired?: true;
}

// ---- server → client events -----------------------------------------------------------

export interface AuthSuccess {
  userId: string;
  socketId: string;
  message: string;
}

export interface AuthError extends ErrorBody {}

export interface ErrorEvent extends ErrorBody {
  context: {
    conversationId?: string;
    messageId?: string;
    reactionId?: string;
    tempId?: string;
  };
}

export interface ConversationJoined {
  conversationId: string;
  participantCount: number;
}

export interface ConversationJoinError extends ErrorBody {
  conversationId: string | null;
}

export interface ConversationLeft {
  conversationId: string;
}

export interface MessageNew extends Body {
  id: string;
  conversationId: string;
  senderId: string;
  createdAt: Timestamp;
  seq: number;
  /** Absent only on the answer to a retried REST send. */
  offset?: number;
  sender: UserRef;
  tempId?: string;
  parentId?: string;
  mentions?: string[];
}

export interface ThreadUpdated {
  conversationId: string;
  messageId: string;
  replyCount: number;
  lastReplyAt: Timestamp;
  participantIds: string[];
}

export interface MessagePin {
  conversationId: string;
  messageId: string;
  by: string;
  at: Timestamp;
  offset: number;
}

export interface MentionNew extends Body {
  conversationId: string;
  messageId: string;
  senderId: string;
  createdAt: Timestamp;
}

export interface MessageUpdated extends Body {
  id: string;
  conversationId: string;
  editedAt: Timestamp;
  offset: number;
}

export interface MessageDeleted {
  id: string;
  conversationId: string;
  deletedAt: Timestamp;
  deletedBy: string;
  offset: number;
}

export interface ReactionAdded {
  id: string;
  messageId: string;
  conversationId: string;
  emoji: string;
  userId: string;
  createdAt: Timestamp;
  user: NamedUser;
  offset: number;
}

export interface ReactionRemoved {
  id: string;
  messageId: string;
  conversationId: string;
  userId: string;
  offset: number;
}

export interface MessageDelivered {
  messageId: string;
  conversationId: string;
  deliveredTo: string[];
  deliveredAt: Timestamp;
}

export interface ReadReceipt {
  conversationId: string;
  messageIds: string[];
  readBy: string;
  readAt: Timestamp;
}

export interface UserOnline {
  conversationId: string;
  userId: string;
  user: UserRef;
  timestamp: Timestamp;
}

export interface UserOffline {
  conversationId: string;
  userId: string;
  timestamp: Timestamp;
  lastSeenAt: Timestamp;
}

export interface TypingStart {
  conversationId: string;
  userId: string;
  user: NamedUser;
}

export interface TypingStop {
  conversationId: string;
  userId: string;
}

export interface PresenceResponse {
  conversationId: string;
  onlineUsers: UserRef[];
  timestamp: Timestamp;
}

/** Every server → client Socket.IO event and its payload. */
export interface ServerEvents {
  'auth:success': AuthSuccess;
  'auth:error': AuthError;
  error: ErrorEvent;
  'conversation:joined': ConversationJoined;
  'conversation:join:error': ConversationJoinError;
  'conversation:left': ConversationLeft;
  'message:new': MessageNew;
  'message:updated': MessageUpdated;
  'message:deleted': MessageDeleted;
  'message:pinned': MessagePin;
  'message:unpinned': MessagePin;
  'thread:updated': ThreadUpdated;
  'mention:new': MentionNew;
  'reaction:added': ReactionAdded;
  'reaction:removed': ReactionRemoved;
  'message:delivered': MessageDelivered;
  'message:read:receipt': ReadReceipt;
  'user:online': UserOnline;
  'user:offline': UserOffline;
  'typing:user:start': TypingStart;
  'typing:user:stop': TypingStop;
  'presence:response': PresenceResponse;
}

// ---- acks and REST bodies ---------------------------------------------------------------

export interface Failure {
  success: false;
  error: ErrorBody;
}

export type Ack<T> = ({ success: true } & T) | Failure;

export interface Sent {
  messageId: string;
  seq: number;
}

export interface Joined {
  conversationId: string;
  participantCount: number;
}

export interface Left {
  conversationId: string;
}

export interface Positioned {
  position: number;
}

export interface Edited {
  messageId: string;
  editedAt: Timestamp;
  position: number;
}

export interface Deleted {
  messageId: string;
  deletedAt: Timestamp;
  position: number;
}

export interface Reaction {
  id: string;
  reactionId: string;
  messageId: string;
  conversationId: string;
  emoji: string;
  userId: string;
  position: number;
}

export interface Pinned {
  conversationId: string;
  messageId: string;
  pinned: boolean;
  by: string;
  at: Timestamp;
  position: number;
}

/** `POST /api/messages`: the `message:new` payload and the log position. */
export interface SentMessage extends MessageNew {
  position: number;
}

/** Every client → server event: its payload and what its ack carries on success. */
export interface ClientEvents {
  'conversation:join': [{ conversationId: string; sinceOffset?: number }, Joined];
  'conversation:leave': [{ conversationId: string }, Left];
  'message:send': [
    { conversationId: string; content: string; tempId?: string; parentId?: string; mentions?: string[] },
    Sent,
  ];
  'message:update': [{ conversationId: string; messageId: string; content: string }, Edited];
  'message:delete': [{ conversationId: string; messageId: string }, Deleted];
  'message:pin': [{ conversationId: string; messageId: string }, Pinned];
  'message:unpin': [{ conversationId: string; messageId: string }, Pinned];
  'message:read': [{ conversationId: string; messageIds: string[] }, Positioned];
  'reaction:add': [{ conversationId: string; messageId: string; emoji: string }, Reaction];
  'reaction:remove': [{ conversationId: string; messageId: string; reactionId: string }, Positioned];
  'typing:start': [{ conversationId: string }, {}];
  'typing:stop': [{ conversationId: string }, {}];
  'presence:request': [{ conversationId: string }, PresenceResponse];
}

export interface Sender {
  id: string;
  name: string | null;
  avatarUrl?: string;
}

export interface MessageReaction {
  id: string;
  emoji: string;
  userId: string;
  createdAt: Timestamp | null;
}

export interface Thread {
  replyCount: number;
  lastReplyAt: Timestamp | null;
  participantIds: string[];
}

/** A message as `GET /api/messages` reads it. */
export interface Message {
  id: string;
  conversationId: string;
  senderId: string;
  seq: number;
  content: string | null;
  erased?: true;
  expired?: true;
  createdAt: Timestamp | null;
  editedAt: Timestamp | null;
  deletedAt: Timestamp | null;
  offset: number;
  sender: Sender;
  reactions: MessageReaction[];
  tempId?: string;
  parentId?: string;
  thread?: Thread;
}

export interface MessagePage {
  messages: Message[];
  hasMore: boolean;
}

export interface LastMessage {
  id: string;
  senderId: string | null;
  content: string | null;
  seq: number | null;
  createdAt: Timestamp | null;
  deletedAt: Timestamp | null;
}

export interface ConversationSummary {
  id: string;
  title: string | null;
  createdBy: string;
  createdAt: Timestamp | null;
  lastMessageAt: Timestamp | null;
  role: string;
  unreadCount: number;
  unreadMentions: number;
  lastMessage: LastMessage | null;
}

export interface ConversationList {
  conversations: ConversationSummary[];
}

export interface ParticipantUser {
  id: string;
  name: string | null;
  avatarUrl: string | null;
  lastSeenAt: Timestamp | null;
}

export interface Participant {
  userId: string;
  role: string;
  joinedAt: Timestamp | null;
  user: ParticipantUser;
}

export interface ConversationDetails {
  id: string;
  title: string | null;
  createdBy: string;
  createdAt: Timestamp | null;
  lastMessageAt: Timestamp | null;
  messageCount: number;
  participants: Participant[];
  pinned: string[];
}

export interface Member {
  userId: string;
  role: string;
}

export interface ConversationCreated {
  id: string;
  title: string | null;
  participants: Member[];
  createdAt: Timestamp;
  position: number;
}

export interface Mention extends Body {
  conversationId: string;
  messageId: string;
  senderId: string;
  createdAt: Timestamp | null;
  read: boolean;
  position: number;
}

export interface MentionPage {
  mentions: Mention[];
  hasMore: boolean;
}

export interface UserProfile {
  id: string;
  name: string | null;
  avatarUrl: string | null;
  status: string;
  lastSeenAt: Timestamp | null;
}

/** `POST /api/demo/session` (only with `chat serve --demo`). */
export interface DemoSession {
  userId: string;
  token: string;
}

/** `GET /api/ops/status` (admin). */
export interface OpsStatus {
  log: { backend: string; position: number };
  readStore: { backend: string };
  projections: { name: string; checkpoint: number; lag: number }[];
  /** This node first, then the nodes it hears from. */
  nodes: { id: string; thisNode: boolean; users: number; sockets?: number }[];
}

/** `POST /api/ops/audit/verify` (admin). */
export interface AuditVerified {
  intact: boolean;
  commits?: number;
  events?: number;
  aggregates?: number;
  brokenAt?: number;
  reason?: string;
  tookMs: number;
}
