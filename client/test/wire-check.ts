// Compile-time check of src/wire.ts against the JSON the server writes: every sample in
// wire/ is written by a golden test of the Rust `wire` crate (`sample(...)`). `exact` refuses a
// sample with a key its type does not declare, and a type with a required key the sample
// lacks; nested objects are checked the same way below. Run by `npm run check`.
import type * as W from '../src/wire.js';

import s_AckJoined from '../wire/AckJoined.json' with { type: 'json' };
import s_AckLeft from '../wire/AckLeft.json' with { type: 'json' };
import s_AckPositioned from '../wire/AckPositioned.json' with { type: 'json' };
import s_AckSent from '../wire/AckSent.json' with { type: 'json' };
import s_AuditVerified from '../wire/AuditVerified.json' with { type: 'json' };
import s_OpsStatus from '../wire/OpsStatus.json' with { type: 'json' };
import s_AuthError from '../wire/AuthError.json' with { type: 'json' };
import s_AuthSuccess from '../wire/AuthSuccess.json' with { type: 'json' };
import s_ConversationCreated from '../wire/ConversationCreated.json' with { type: 'json' };
import s_ConversationDetails from '../wire/ConversationDetails.json' with { type: 'json' };
import s_ConversationJoinError from '../wire/ConversationJoinError.json' with { type: 'json' };
import s_ConversationJoined from '../wire/ConversationJoined.json' with { type: 'json' };
import s_ConversationLeft from '../wire/ConversationLeft.json' with { type: 'json' };
import s_ConversationList from '../wire/ConversationList.json' with { type: 'json' };
import s_DemoSession from '../wire/DemoSession.json' with { type: 'json' };
import s_Deleted from '../wire/Deleted.json' with { type: 'json' };
import s_Edited from '../wire/Edited.json' with { type: 'json' };
import s_Error from '../wire/Error.json' with { type: 'json' };
import s_Failure from '../wire/Failure.json' with { type: 'json' };
import s_MentionNew from '../wire/MentionNew.json' with { type: 'json' };
import s_MentionPage from '../wire/MentionPage.json' with { type: 'json' };
import s_Message from '../wire/Message.json' with { type: 'json' };
import s_Message_thread from '../wire/Message.thread.json' with { type: 'json' };
import s_MessageDeleted from '../wire/MessageDeleted.json' with { type: 'json' };
import s_MessageDelivered from '../wire/MessageDelivered.json' with { type: 'json' };
import s_MessageNew from '../wire/MessageNew.json' with { type: 'json' };
import s_MessagePage from '../wire/MessagePage.json' with { type: 'json' };
import s_MessagePin from '../wire/MessagePin.json' with { type: 'json' };
import s_MessageUpdated from '../wire/MessageUpdated.json' with { type: 'json' };
import s_Pinned from '../wire/Pinned.json' with { type: 'json' };
import s_PresenceResponse from '../wire/PresenceResponse.json' with { type: 'json' };
import s_Reaction from '../wire/Reaction.json' with { type: 'json' };
import s_ReactionAdded from '../wire/ReactionAdded.json' with { type: 'json' };
import s_ReactionRemoved from '../wire/ReactionRemoved.json' with { type: 'json' };
import s_ReadReceipt from '../wire/ReadReceipt.json' with { type: 'json' };
import s_SentMessage from '../wire/SentMessage.json' with { type: 'json' };
import s_ThreadUpdated from '../wire/ThreadUpdated.json' with { type: 'json' };
import s_TypingStart from '../wire/TypingStart.json' with { type: 'json' };
import s_TypingStop from '../wire/TypingStop.json' with { type: 'json' };
import s_UserOffline from '../wire/UserOffline.json' with { type: 'json' };
import s_UserOnline from '../wire/UserOnline.json' with { type: 'json' };
import s_UserProfile from '../wire/UserProfile.json' with { type: 'json' };

/** `s` must be a `T` with no key that `T` does not have. */
const exact =
  <T>() =>
  <S extends T>(s: S & Record<Exclude<keyof S, keyof T>, never>): S =>
    s;
type Ok<T> = { success: boolean } & T;

exact<Ok<W.Joined>>()(s_AckJoined);
exact<Ok<W.Left>>()(s_AckLeft);
exact<Ok<W.Positioned>>()(s_AckPositioned);
exact<Ok<W.Sent>>()(s_AckSent);
exact<W.AuthError>()(s_AuthError);
exact<W.AuthSuccess>()(s_AuthSuccess);
exact<W.ConversationCreated>()(s_ConversationCreated);
exact<W.ConversationDetails>()(s_ConversationDetails);
exact<W.ConversationJoinError>()(s_ConversationJoinError);
exact<W.ConversationJoined>()(s_ConversationJoined);
exact<W.ConversationLeft>()(s_ConversationLeft);
exact<W.ConversationList>()(s_ConversationList);
exact<W.Deleted>()(s_Deleted);
exact<W.Edited>()(s_Edited);
exact<W.ErrorEvent>()(s_Error);
exact<{ success: boolean; error: W.ErrorBody }>()(s_Failure);
exact<W.MentionNew>()(s_MentionNew);
exact<W.MentionPage>()(s_MentionPage);
exact<W.Message>()(s_Message);
exact<W.Message>()(s_Message_thread);
exact<W.MessageDeleted>()(s_MessageDeleted);
exact<W.MessageDelivered>()(s_MessageDelivered);
exact<W.MessageNew>()(s_MessageNew);
exact<W.MessagePage>()(s_MessagePage);
exact<W.MessagePin>()(s_MessagePin);
exact<W.MessageUpdated>()(s_MessageUpdated);
exact<W.Pinned>()(s_Pinned);
exact<W.PresenceResponse>()(s_PresenceResponse);
exact<W.Reaction>()(s_Reaction);
exact<W.ReactionAdded>()(s_ReactionAdded);
exact<W.ReactionRemoved>()(s_ReactionRemoved);
exact<W.ReadReceipt>()(s_ReadReceipt);
exact<W.SentMessage>()(s_SentMessage);
exact<W.ThreadUpdated>()(s_ThreadUpdated);
exact<W.TypingStart>()(s_TypingStart);
exact<W.TypingStop>()(s_TypingStop);
exact<W.UserOffline>()(s_UserOffline);
exact<W.UserOnline>()(s_UserOnline);
exact<W.UserProfile>()(s_UserProfile);

exact<W.AuditVerified>()(s_AuditVerified);
exact<W.DemoSession>()(s_DemoSession);
exact<W.OpsStatus>()(s_OpsStatus);

// Nested shapes.
exact<W.UserRef>()(s_MessageNew.sender);
exact<W.NamedUser>()(s_ReactionAdded.user);
exact<W.NamedUser>()(s_TypingStart.user);
exact<W.UserRef>()(s_UserOnline.user);
exact<W.UserRef>()(s_PresenceResponse.onlineUsers[0]!);
exact<W.ErrorEvent['context']>()(s_Error.context);
exact<W.ErrorBody>()(s_Failure.error);
exact<W.Message>()(s_MessagePage.messages[0]!);
exact<W.MessageReaction>()(s_MessagePage.messages[0]!.reactions[0]!);
exact<W.Sender>()(s_MessagePage.messages[0]!.sender);
exact<W.Thread>()(s_Message_thread.thread);
exact<W.Mention>()(s_MentionPage.mentions[0]!);
exact<W.ConversationSummary>()(s_ConversationList.conversations[0]!);
exact<W.LastMessage>()(s_ConversationList.conversations[0]!.lastMessage);
exact<W.Participant>()(s_ConversationDetails.participants[0]!);
exact<W.ParticipantUser>()(s_ConversationDetails.participants[0]!.user);
exact<W.Member>()(s_ConversationCreated.participants[0]!);
exact<W.OpsStatus['log']>()(s_OpsStatus.log);
exact<W.OpsStatus['projections'][number]>()(s_OpsStatus.projections[0]!);
exact<W.OpsStatus['nodes'][number]>()(s_OpsStatus.nodes[0]!);
